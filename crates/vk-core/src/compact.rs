//! Compact in-memory storage of API objects.
//!
//! k8s-openapi's structs reserve room for every optional field inline: a `Pod` with one
//! volume and one container occupies about 10 KB of heap however little it says, while
//! its JSON is about 3 KB and that JSON deflated (its keys repeat a lot) under 1 KB.
//! Anything that keeps thousands of pods (the pod controller's entries, an in-memory
//! provider) keeps them deflated and decodes on use, which costs tens of microseconds
//! per access — cheap next to the API round trip every pod sync makes anyway.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value kept as its deflated JSON encoding; cheap to clone (shared bytes).
///
/// ```
/// use k8s_openapi::api::core::v1::Pod;
/// use vk_core::compact::Compact;
/// let mut pod = Pod::default();
/// pod.metadata.name = Some("web".into());
/// let c = Compact::new(&pod);
/// assert_eq!(c.decode().metadata.name.as_deref(), Some("web"));
/// ```
pub struct Compact<T> {
    /// Deflated JSON.
    json: Arc<[u8]>,
    _type: std::marker::PhantomData<fn() -> T>,
}

impl<T> Clone for Compact<T> {
    fn clone(&self) -> Self {
        Self {
            json: Arc::clone(&self.json),
            _type: std::marker::PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Compact<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Compact({} bytes)", self.json.len())
    }
}

impl<T> PartialEq for Compact<T> {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl<T: Serialize + DeserializeOwned + Default> Compact<T> {
    /// Encodes `value`.
    pub fn new(value: &T) -> Self {
        use std::io::Write as _;
        let json: Vec<u8> = serde_json::to_vec(value).unwrap_or_default();
        let mut encoder = flate2::write::DeflateEncoder::new(
            Vec::with_capacity(json.len() / 3),
            flate2::Compression::fast(),
        );
        let deflated = encoder
            .write_all(&json)
            .and_then(|()| encoder.finish())
            .unwrap_or_default();
        Self {
            json: deflated.into(),
            _type: std::marker::PhantomData,
        }
    }

    /// Decodes the value (a value that encoded cannot fail to decode; the default is
    /// returned if it somehow does).
    pub fn decode(&self) -> T {
        serde_json::from_slice(&self.json()).unwrap_or_default()
    }

    /// The JSON encoding.
    pub fn json(&self) -> Vec<u8> {
        use std::io::Read as _;
        let mut out = Vec::with_capacity(self.json.len() * 4);
        let _ = flate2::read::DeflateDecoder::new(&self.json[..]).read_to_end(&mut out);
        out
    }

    /// The stored (deflated) size in bytes.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    /// Whether the encoding is empty (never, for a value made by [`Compact::new`]).
    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }
}

impl Compact<k8s_openapi::api::core::v1::Pod> {
    /// The pod's `metadata.uid`, read without decoding the whole pod.
    pub fn uid(&self) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Meta {
            uid: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Head {
            metadata: Option<Meta>,
        }
        serde_json::from_slice::<Head>(&self.json())
            .ok()
            .and_then(|h| h.metadata)
            .and_then(|m| m.uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Pod, PodStatus};

    #[test]
    fn round_trips_and_compares_by_content() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "i"}],
                     "volumes": [{"name": "v", "emptyDir": {}}]},
            "status": {"phase": "Running"}
        }))
        .expect("pod");
        let c = Compact::new(&pod);
        assert_eq!(c.decode(), pod);
        assert_eq!(c.uid().as_deref(), Some("u"));
        let plain = serde_json::to_vec(&pod).expect("json").len();
        assert!(c.len() < plain, "{} deflated vs {plain} plain", c.len());
        assert_eq!(c.json(), serde_json::to_vec(&pod).expect("json"));
        let s1 = Compact::new(&PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        });
        let s2 = Compact::new(&PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        });
        assert_eq!(s1, s2);
    }
}
