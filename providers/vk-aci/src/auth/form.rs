//! `application/x-www-form-urlencoded` bodies (token requests).

/// Encodes `pairs` as a form body: unreserved characters kept, space as `+`, every
/// other byte percent-encoded.
pub(crate) fn encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        component(&mut out, name);
        out.push('=');
        component(&mut out, value);
    }
    out
}

fn component(out: &mut String, text: &str) {
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
}

/// Decodes a form body into pairs.
#[cfg(test)]
pub(crate) fn decode(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (unescape(name), unescape(value))
        })
        .collect()
}

#[cfg(test)]
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_reserved_characters() {
        let body = encode(&[
            ("scope", "https://management.azure.com/.default"),
            ("a b", "x&y=z"),
        ]);
        assert_eq!(
            body,
            "scope=https%3A%2F%2Fmanagement.azure.com%2F.default&a+b=x%26y%3Dz"
        );
        assert_eq!(
            decode(&body),
            vec![
                (
                    "scope".to_string(),
                    "https://management.azure.com/.default".to_string()
                ),
                ("a b".to_string(), "x&y=z".to_string())
            ]
        );
    }
}
