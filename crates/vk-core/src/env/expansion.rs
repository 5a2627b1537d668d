//! `$(VAR)` expansion with Kubernetes' exact rules (as for container `command`, `args`
//! and `env[].value`):
//!
//! * `$(NAME)` is replaced by NAME's value when NAME is defined, and kept verbatim when
//!   it is not;
//! * `$$` is an escaped `$` (so `$$(NAME)` yields the literal `$(NAME)`);
//! * a `$(` without a closing `)` and a `$` followed by anything else are kept as written.

/// Expands `input`, looking names up with `lookup`.
///
/// ```
/// use vk_core::env::expand;
/// let lookup = |name: &str| (name == "HOST").then(|| "db".to_owned());
/// assert_eq!(expand("$(HOST):5432", lookup), "db:5432");
/// assert_eq!(expand("$(MISSING)", lookup), "$(MISSING)");
/// assert_eq!(expand("$$(HOST)", lookup), "$(HOST)");
/// ```
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let mut chars = after.chars();
        match chars.next() {
            // A trailing `$` is kept.
            None => {
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after[1..].find(')') {
                Some(close) => {
                    let name = &after[1..1 + close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 2..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(c) => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "VAR_A" => Some("A".into()),
            "VAR_B" => Some("B".into()),
            "VAR_C" => Some("C".into()),
            "VAR_REF" => Some("$(VAR_A)".into()),
            "VAR_EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn matches_the_kubernetes_expansion_table() {
        // Cases from the Kubernetes expansion tests (semantics, not code).
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("foo\\$(VAR_C)bar", "foo\\Cbar"),
            ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
            ("$(VAR_A)$(VAR_B)$(VAR_C)", "ABC"),
            ("$(VAR_REF)", "$(VAR_A)"),
            ("foo$(VAR_EMPTY)bar", "foobar"),
            ("$(VAR_DNE)", "$(VAR_DNE)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$(VAR_A", "$(VAR_A"),
            ("$(", "$("),
            ("$", "$"),
            ("$$", "$"),
            ("$x", "$x"),
            ("$é", "$é"),
            ("$()", "$()"),
            ("foo $(VAR_A) bar $(VAR_DNE) $", "foo A bar $(VAR_DNE) $"),
            ("", ""),
            ("no refs", "no refs"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, lookup), want, "input {input:?}");
        }
    }
}
