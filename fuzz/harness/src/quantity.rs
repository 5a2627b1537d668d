//! Kubernetes resource quantities ([`vk_core::Quantity`]).

use vk_core::Quantity;

/// Target `quantity`: the input, when it is UTF-8, is a quantity as it appears in a
/// pod spec or a provider's capacity.
///
/// Checks: parsing and the accessors do not panic (no overflow on huge mantissas or
/// exponents), and a parsed quantity prints as text that parses back to the same
/// value; dividing a non-zero quantity by itself gives 1.
pub fn parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(quantity) = Quantity::parse(text) else {
        return;
    };
    let shown = quantity.to_string();
    assert_eq!(
        Quantity::parse(&shown),
        Ok(quantity),
        "{text:?} prints as {shown:?}"
    );
    if quantity.millis() != 0 {
        assert_eq!(quantity.ceil_div(&quantity, true), Some(1), "{text:?}");
    }
    if quantity.units_ceil() != 0 {
        assert_eq!(quantity.ceil_div(&quantity, false), Some(1), "{text:?}");
    }
}
