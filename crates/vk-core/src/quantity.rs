//! Parsing Kubernetes resource quantities (`100m`, `1.5`, `512Mi`, `2G`, `1e3`).
//!
//! Values are kept exactly as integers of nano-units (10⁻⁹), which covers every suffix
//! Kubernetes accepts (`n` … `E`, `Ki` … `Ei`) without floating-point rounding.

use std::fmt;

/// A parsed quantity, in nano-units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    nanos: i128,
}

/// A string that is not a Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?}: {reason}")]
pub struct QuantityError {
    input: String,
    reason: &'static str,
}

const NANO: i128 = 1_000_000_000;

impl Quantity {
    /// A whole number of units.
    pub fn from_units(units: i64) -> Self {
        Self {
            nanos: i128::from(units) * NANO,
        }
    }

    /// Thousandths of a unit (e.g. millicores).
    pub fn from_millis(millis: i64) -> Self {
        Self {
            nanos: i128::from(millis) * 1_000_000,
        }
    }

    /// Parses `text`.
    ///
    /// ```
    /// use vk_core::Quantity;
    /// assert_eq!(Quantity::parse("250m").unwrap().millis(), 250);
    /// assert_eq!(Quantity::parse("1Gi").unwrap().units_ceil(), 1 << 30);
    /// assert_eq!(Quantity::parse("1.5k").unwrap().units_ceil(), 1500);
    /// assert!(Quantity::parse("12 apples").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let err = |reason| QuantityError {
            input: text.to_owned(),
            reason,
        };
        let s = text.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        let (negative, s) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let number_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(number_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(err("no number"));
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        // mantissa as an integer scaled by 10^frac_len
        let digits: String = format!("{int_part}{frac_part}");
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| err("number too large"))?
        };
        let frac_len = u32::try_from(frac_part.len()).map_err(|_| err("too many digits"))?;

        // The multiplier as (numerator, power of ten in the denominator).
        let (mul, exp10): (i128, i32) = match suffix {
            "" => (1, 0),
            "n" => (1, -9),
            "u" => (1, -6),
            "m" => (1, -3),
            "k" => (1, 3),
            "M" => (1, 6),
            "G" => (1, 9),
            "T" => (1, 12),
            "P" => (1, 15),
            "E" => (1, 18),
            "Ki" => (1 << 10, 0),
            "Mi" => (1 << 20, 0),
            "Gi" => (1 << 30, 0),
            "Ti" => (1 << 40, 0),
            "Pi" => (1 << 50, 0),
            "Ei" => (1 << 60, 0),
            s if s.starts_with(['e', 'E']) => {
                let e: i32 = s[1..].parse().map_err(|_| err("bad exponent"))?;
                (1, e)
            }
            _ => return Err(err("unknown suffix")),
        };
        // nanos = mantissa * mul * 10^(exp10 + 9 - frac_len)
        // An exponent near i32::MAX (`3E2147483647`) must be an error, not an overflow.
        let shift = exp10
            .checked_add(9)
            .and_then(|e| e.checked_sub(i32::try_from(frac_len).ok()?))
            .ok_or_else(|| err("exponent out of range"))?;
        let mut nanos = mantissa.checked_mul(mul).ok_or_else(|| err("too large"))?;
        if shift >= 0 {
            let p = 10i128
                .checked_pow(u32::try_from(shift).map_err(|_| err("too large"))?)
                .ok_or_else(|| err("too large"))?;
            nanos = nanos.checked_mul(p).ok_or_else(|| err("too large"))?;
        } else {
            // Kubernetes rounds sub-nano precision up.
            let p = 10i128
                .checked_pow(u32::try_from(-shift).map_err(|_| err("too small"))?)
                .ok_or_else(|| err("too small"))?;
            nanos = div_ceil(nanos, p);
        }
        Ok(Self {
            nanos: if negative { -nanos } else { nanos },
        })
    }

    /// The value in thousandths, rounded up (Kubernetes' `MilliValue`).
    pub fn millis(&self) -> i128 {
        div_ceil(self.nanos, 1_000_000)
    }

    /// The value in whole units, rounded up (Kubernetes' `Value`).
    pub fn units_ceil(&self) -> i128 {
        div_ceil(self.nanos, NANO)
    }

    /// `ceil(self / divisor)` as the kubelet computes resourceFieldRef values: CPU in
    /// millis (`ceil(milli / divisor_milli)`), everything else in units.
    pub fn ceil_div(&self, divisor: &Quantity, as_cpu: bool) -> Option<i128> {
        let (a, b) = if as_cpu {
            (self.millis(), divisor.millis())
        } else {
            (self.units_ceil(), divisor.units_ceil())
        };
        (b != 0).then(|| div_ceil(a, b))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos % NANO == 0 {
            write!(f, "{}", self.nanos / NANO)
        } else if self.nanos % 1_000_000 == 0 {
            write!(f, "{}m", self.nanos / 1_000_000)
        } else {
            write!(f, "{}n", self.nanos)
        }
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if (a % b != 0) && ((a > 0) == (b > 0)) {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).expect(s)
    }

    #[test]
    fn parses_all_suffixes() {
        assert_eq!(q("1").units_ceil(), 1);
        assert_eq!(q("100m").millis(), 100);
        assert_eq!(q("0.1").millis(), 100);
        assert_eq!(q(".5").millis(), 500);
        assert_eq!(q("1.5").millis(), 1500);
        assert_eq!(q("1k").units_ceil(), 1000);
        assert_eq!(q("1M").units_ceil(), 1_000_000);
        assert_eq!(q("1Ki").units_ceil(), 1024);
        assert_eq!(q("512Mi").units_ceil(), 512 << 20);
        assert_eq!(q("1.5Gi").units_ceil(), 3 << 29);
        assert_eq!(q("2e3").units_ceil(), 2000);
        assert_eq!(q("1E3").units_ceil(), 1000);
        assert_eq!(q("5n").millis(), 1);
        assert_eq!(q("-2").units_ceil(), -2);
        assert_eq!(q("1Ei").units_ceil(), 1 << 60);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "abc", "1x", "1.2.3", ".", "1Qi", "1e", "3E2147483647"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resource_field_ref_rounding_matches_the_kubelet() {
        // CPU limit 250m with divisor 1 → 1 core (rounded up); with divisor 1m → 250.
        assert_eq!(q("250m").ceil_div(&q("1"), true), Some(1));
        assert_eq!(q("250m").ceil_div(&q("1m"), true), Some(250));
        // Memory 1Gi with divisor 1Mi → 1024; 1Gi+1 byte → 1025.
        assert_eq!(q("1Gi").ceil_div(&q("1Mi"), false), Some(1024));
        assert_eq!(q("1073741825").ceil_div(&q("1Mi"), false), Some(1025));
        assert_eq!(q("1").ceil_div(&q("0"), false), None);
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(q("2").to_string(), "2");
        assert_eq!(q("250m").to_string(), "250m");
        assert_eq!(q("0.5m").to_string(), "500000n");
    }
}
