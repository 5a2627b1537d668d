//! The base URL of a client, and the URLs of its requests.

use std::fmt::Write as _;

use http::Uri;
use http::uri::{Authority, Scheme};

use super::error::HttpError;

/// A parsed `http://` or `https://` base URL: scheme, host and port, and a path prefix
/// without trailing slash.
#[derive(Debug, Clone)]
pub(crate) struct BaseUrl {
    scheme: Scheme,
    authority: Authority,
    prefix: String,
}

impl BaseUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| invalid("no scheme (expected http:// or https://)"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(invalid("the scheme must be http or https"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(HttpError::InvalidUrl {
                // Never echo credentials.
                url: format!("{scheme}://{}", authority.host()),
                reason: "credentials in the URL are not supported; use a header".into(),
            });
        }
        if uri.query().is_some() {
            return Err(invalid("a base URL cannot have a query"));
        }
        Ok(Self {
            scheme,
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    pub(crate) fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// `scheme://host:port/prefix`, for messages.
    pub(crate) fn display(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.prefix)
    }

    /// The URL path of `path` under the base URL's prefix: `path` is always relative
    /// to the prefix, with or without a leading `/`.
    pub(crate) fn path_of(&self, path: &str) -> String {
        format!("{}/{}", self.prefix, path.trim_start_matches('/'))
    }

    /// The full URL of `full_path` (from [`path_of`](Self::path_of)) with `query`
    /// appended, percent-encoded.
    pub(crate) fn uri(
        &self,
        full_path: &str,
        query: &[(String, String)],
    ) -> Result<Uri, HttpError> {
        let mut path_and_query = full_path.to_string();
        let mut separator = if full_path.contains('?') { '&' } else { '?' };
        for (name, value) in query {
            path_and_query.push(separator);
            encode_component(&mut path_and_query, name);
            path_and_query.push('=');
            encode_component(&mut path_and_query, value);
            separator = '&';
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| HttpError::InvalidUrl {
                url: format!("{}://{}{}", self.scheme, self.authority, full_path),
                reason: e.to_string(),
            })
    }
}

/// Appends `text` percent-encoded for a query component: everything but the
/// unreserved characters of RFC 3986 is escaped.
fn encode_component(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn paths_join_under_the_prefix() {
        let base = BaseUrl::parse("https://nomad.example:4646/api/").expect("base");
        assert!(base.is_https());
        assert_eq!(base.path_of("/v1/jobs"), "/api/v1/jobs");
        assert_eq!(base.path_of("v1/jobs"), "/api/v1/jobs");
        let uri = base
            .uri(
                &base.path_of("v1/jobs"),
                &q(&[("namespace", "a b&c"), ("x", "é")]),
            )
            .expect("uri");
        assert_eq!(
            uri.to_string(),
            "https://nomad.example:4646/api/v1/jobs?namespace=a%20b%26c&x=%C3%A9"
        );
        let root = BaseUrl::parse("http://127.0.0.1:8080").expect("base");
        assert_eq!(root.path_of(""), "/");
        assert_eq!(
            root.uri("/exec?task=web", &q(&[("tty", "true")]))
                .expect("uri")
                .to_string(),
            "http://127.0.0.1:8080/exec?task=web&tty=true"
        );
        assert_eq!(root.display(), "http://127.0.0.1:8080");
    }

    #[test]
    fn bad_base_urls_are_refused_without_echoing_credentials() {
        for url in [
            "127.0.0.1:80",
            "ftp://host/",
            "/v1",
            "http://host/?a=b",
            "not a url",
        ] {
            assert!(
                matches!(BaseUrl::parse(url), Err(HttpError::InvalidUrl { .. })),
                "{url}"
            );
        }
        let err = BaseUrl::parse("https://user:hunter2@host/").expect_err("credentials");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let base = BaseUrl::parse("http://host").expect("base");
        assert!(base.uri("/bad path", &[]).is_err());
    }
}
