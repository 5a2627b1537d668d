//! An in-memory API server for unit tests: a [`Client`] whose every request is answered
//! by a function of its method, path and body.

use std::convert::Infallible;
use std::sync::Arc;

use http::Method;
use kube::Client;
use serde_json::{Value, json};

/// A client answered by `answer(method, path, body)` → (status code, JSON body).
pub(crate) fn client<F>(answer: F) -> Client
where
    F: Fn(&Method, &str, &[u8]) -> (u16, Value) + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let answer = Arc::clone(&answer);
        async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let (code, value) = answer(&parts.method, parts.uri.path(), &bytes);
            let response = http::Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(value.to_string().into_bytes()))
                .expect("a valid response");
            Ok::<_, Infallible>(response)
        }
    });
    Client::new(svc, "default")
}

/// A failure `Status` as the API server answers it.
pub(crate) fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "reason": reason, "message": message, "code": code}),
    )
}
