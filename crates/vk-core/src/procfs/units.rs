//! The units of `/proc`: clock ticks and pages.

use std::sync::OnceLock;

/// The clock tick rate and page size `/proc` counts in, and conversions from them.
///
/// [`Units::host`] reads the host's values; tests and tools can build other ones.
///
/// ```
/// use vk_core::procfs::Units;
///
/// let units = Units { ticks_per_second: 250, page_size: 16384 };
/// assert_eq!(units.seconds(500), 2.0);
/// assert_eq!(units.nanos(1), 4_000_000);
/// assert_eq!(units.bytes(3), 49152);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    /// Clock ticks per second of `/proc` times (`sysconf(_SC_CLK_TCK)`, `USER_HZ`).
    pub ticks_per_second: u64,
    /// Bytes per page of `/proc` memory counts.
    pub page_size: u64,
}

impl Units {
    /// This host's units, read once per process.
    pub fn host() -> Self {
        static HOST: OnceLock<Units> = OnceLock::new();
        *HOST.get_or_init(|| Self {
            ticks_per_second: rustix::param::clock_ticks_per_second(),
            page_size: rustix::param::page_size() as u64,
        })
    }

    /// `ticks` in seconds.
    pub fn seconds(self, ticks: u64) -> f64 {
        ticks as f64 / self.ticks_per_second.max(1) as f64
    }

    /// `ticks` in nanoseconds (saturating at `u64::MAX`).
    pub fn nanos(self, ticks: u64) -> u64 {
        let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(self.ticks_per_second.max(1));
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    /// `pages` in bytes (saturating at `u64::MAX`).
    pub fn bytes(self, pages: u64) -> u64 {
        pages.saturating_mul(self.page_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_use_the_given_units() {
        let hz100 = Units {
            ticks_per_second: 100,
            page_size: 4096,
        };
        assert_eq!(hz100.seconds(300), 3.0);
        assert_eq!(hz100.nanos(4), 40_000_000);
        assert_eq!(hz100.bytes(4), 4 * 4096);
        // More ticks than fit in u64 nanoseconds at 1 GHz arithmetic.
        assert_eq!(hz100.nanos(u64::MAX / 2), u64::MAX);
        assert_eq!(hz100.nanos(20_000_000_000), 200_000_000_000_000_000);
        assert_eq!(hz100.bytes(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_host_units_are_plausible() {
        let host = Units::host();
        assert!((1..=10_000).contains(&host.ticks_per_second), "{host:?}");
        assert!(
            host.page_size >= 4096 && host.page_size.is_power_of_two(),
            "{host:?}"
        );
        assert_eq!(Units::host(), host);
    }
}
