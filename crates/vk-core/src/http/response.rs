//! An answer: status, headers and a body read whole, decoded or streamed.

use std::fmt;

use bytes::Bytes;
use futures::TryStreamExt as _;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use super::error::{HttpError, chain_text};
use crate::capabilities::ByteStream;

/// A successful (status below 400) answer whose body has not been read yet.
///
/// The body is read by exactly one of [`bytes`](Self::bytes), [`text`](Self::text),
/// [`json`](Self::json) or [`into_stream`](Self::into_stream); the request timeout
/// does not apply to it.
pub struct HttpResponse {
    response: hyper::Response<Incoming>,
    method: Method,
    path: String,
}

impl HttpResponse {
    pub(crate) fn new(response: hyper::Response<Incoming>, method: Method, path: String) -> Self {
        Self {
            response,
            method,
            path,
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, HttpError> {
        match self.response.into_body().collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(err) => Err(HttpError::ReadBody {
                method: self.method,
                path: self.path,
                reason: chain_text(&err),
            }),
        }
    }

    /// The whole body as text (invalid UTF-8 is replaced by U+FFFD).
    pub async fn text(self) -> Result<String, HttpError> {
        let bytes = self.bytes().await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The body decoded from JSON. An empty body decodes as `null` (so `()` and
    /// `Option<T>` accept it). A mismatch names the field where it happened, e.g.
    /// `items[0].name`, and the line and column.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, HttpError> {
        let method = self.method.clone();
        let path = self.path.clone();
        let bytes = self.bytes().await?;
        decode_json(&bytes).map_err(|(field, reason)| HttpError::Decode {
            method,
            path,
            field,
            reason,
        })
    }

    /// The body as a stream of chunks, as they arrive (for logs followed, event
    /// streams); dropping the stream closes the connection.
    pub fn into_stream(self) -> ByteStream {
        Box::pin(
            self.response
                .into_body()
                .into_data_stream()
                .map_err(std::io::Error::other),
        )
    }

    pub(crate) fn into_inner(self) -> hyper::Response<Incoming> {
        self.response
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("status", &self.response.status())
            .finish_non_exhaustive()
    }
}

/// Decodes `bytes` (empty: `null`); `Err` holds the path of the offending field and
/// the decoder's message.
fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, (String, String)> {
    let bytes: &[u8] = if bytes.trim_ascii().is_empty() {
        b"null"
    } else {
        bytes
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))?;
    deserializer
        .end()
        .map_err(|e| (".".to_string(), e.to_string()))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct List {
        items: Vec<Item>,
    }
    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Item {
        name: String,
    }

    #[test]
    fn json_errors_name_the_field() {
        let (field, reason) =
            decode_json::<List>(br#"{"items":[{"name":"a"},{"name":5}]}"#).expect_err("bad");
        assert_eq!(field, "items[1].name");
        assert!(reason.contains("invalid type: integer `5`"), "{reason}");
        assert!(reason.contains("line 1 column"), "{reason}");

        let (field, _) = decode_json::<List>(b"{\"items\":[]} x").expect_err("trailing");
        assert_eq!(field, ".");
        assert_eq!(
            decode_json::<List>(br#"{"items":[{"name":"a"}]}"#).expect("ok"),
            List {
                items: vec![Item { name: "a".into() }]
            }
        );
        decode_json::<()>(b"  ").expect("empty is null");
        assert_eq!(decode_json::<Option<List>>(b"").expect("empty"), None);
    }
}
