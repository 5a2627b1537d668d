//! Compact in-memory storage of API objects.
//!
//! k8s-openapi's structs reserve room for every optional field inline: a `Pod` with one
//! volume and one container occupies about 10 KB of heap however little it says, while
//! its JSON is about 3 KB and that JSON deflated (its keys repeat a lot) under 1 KB.
//! Anything that keeps thousands of pods (the pod controller's entries, an in-memory
//! provider) keeps them deflated and decodes on use, which costs tens of microseconds
//! per access — cheap next to the API round trip every pod sync makes anyway.
//!
//! # The preset dictionary
//!
//! One pod deflated alone still spells out every key and every value the API server
//! fills in (`terminationMessagePath`, the default tolerations, the ServiceAccount
//! volume, managedFields...): about 900 bytes. Deflate may refer back to anything in
//! the 32 KB before it, so both sides first pass a *dictionary*, a synthetic pod with
//! those fields ([`dictionary`]), through the compressor and decompressor and throw
//! that output away; the pod then costs only what differs from it, about a third.
//! At 100,000 pods held twice (the core's copy and an in-memory provider's), that is
//! about 150 MB. The dictionary lives in memory only, as do the encodings: nothing
//! deflated here is ever stored or sent, so it may change between versions.

use std::sync::{Arc, OnceLock};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

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
        let json: Vec<u8> = serde_json::to_vec(value).unwrap_or_default();
        Self {
            json: deflate(&json).into(),
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
        inflate(&self.json)
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

/// The preset dictionary: the JSON of a synthetic running pod carrying the fields and
/// values the API server, admission and a kubelet fill in, in k8s-openapi's field
/// order (it is serialized through `Pod`). Built once.
///
/// ```
/// let dictionary = vk_core::compact::dictionary();
/// assert!(dictionary.starts_with(b"{\"apiVersion\":\"v1\""));
/// assert!(std::str::from_utf8(dictionary).is_ok_and(|d| d.contains("/dev/termination-log")));
/// ```
pub fn dictionary() -> &'static [u8] {
    static DICTIONARY: OnceLock<Vec<u8>> = OnceLock::new();
    DICTIONARY.get_or_init(|| {
        let pod: k8s_openapi::api::core::v1::Pod =
            serde_json::from_value(typical_pod()).unwrap_or_default();
        let mut json = serde_json::to_vec(&pod).unwrap_or_default();
        // A stored deflate block holds at most 65,535 bytes (see `inflate`).
        json.truncate(usize::from(u16::MAX));
        json
    })
}

/// The pod behind [`dictionary`]: generic values only (nothing of a particular
/// cluster or workload), the ones that repeat in every pod.
fn typical_pod() -> serde_json::Value {
    let time = "2026-01-01T00:00:00Z";
    let condition = |t: &str| {
        serde_json::json!({"type": t, "status": "True", "lastProbeTime": null,
                           "lastTransitionTime": time})
    };
    let toleration = |key: &str| {
        serde_json::json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                           "tolerationSeconds": 300})
    };
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "app-7d4b9c8f6d-x2x9q",
            "generateName": "app-7d4b9c8f6d-",
            "namespace": "default",
            "uid": "00000000-0000-0000-0000-000000000000",
            "resourceVersion": "1000000",
            "creationTimestamp": time,
            "labels": {"app": "app", "pod-template-hash": "7d4b9c8f6d"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": ""},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "app-7d4b9c8f6d", "uid": "00000000-0000-0000-0000-000000000000",
                "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update",
                 "apiVersion": "v1", "time": time, "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}},
                     "f:ownerReferences": {".": {}, "k:{\"uid\":\"00000000-0000-0000-0000-000000000000\"}": {}}},
                   "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {},
                       "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {},
                       "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                     "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:nodeName": {},
                     "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {},
                     "f:terminationGracePeriodSeconds": {}, "f:tolerations": {}}}},
                {"manager": "virtual-kubelet", "operation": "Update", "apiVersion": "v1",
                 "time": time, "fieldsType": "FieldsV1", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:conditions": {
                     "k:{\"type\":\"ContainersReady\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}},
                     "k:{\"type\":\"Initialized\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}},
                     "k:{\"type\":\"Ready\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}},
                   "f:containerStatuses": {}, "f:hostIP": {}, "f:phase": {}, "f:podIP": {},
                   "f:podIPs": {".": {}, "k:{\"ip\":\"10.0.0.1\"}": {".": {}, "f:ip": {}}},
                   "f:startTime": {}}}}
            ]
        },
        "spec": {
            "containers": [{
                "name": "app", "image": "registry.example/app:1.0",
                "imagePullPolicy": "IfNotPresent", "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "volumeMounts": [{"name": "kube-api-access-x2x9q", "readOnly": true,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
            }],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": true,
            "nodeName": "virtual-kubelet",
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "serviceAccount": "default",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {"key": "virtual-kubelet.io/provider", "operator": "Exists"},
                toleration("node.kubernetes.io/not-ready"),
                toleration("node.kubernetes.io/unreachable")
            ],
            "volumes": [{"name": "kube-api-access-x2x9q", "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt",
                                   "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace",
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                ]}}, {"name": "default-token-x2x9q", "secret": {"defaultMode": 420,
                    "secretName": "default-token-x2x9q"}}]
        },
        "status": {
            "phase": "Running",
            "conditions": [condition("Initialized"), condition("Ready"),
                           condition("ContainersReady"), condition("PodScheduled")],
            "hostIP": "10.0.0.1",
            "podIP": "10.0.0.1",
            "podIPs": [{"ip": "10.0.0.1"}],
            "startTime": time,
            "containerStatuses": [{
                "name": "app", "ready": true, "restartCount": 0, "started": true,
                "image": "registry.example/app:1.0", "imageID": "",
                "containerID": "containerd://0000000000000000",
                "state": {"running": {"startedAt": time}}, "lastState": {}
            }],
            "qosClass": "BestEffort"
        }
    })
}

/// `json` deflated after the [`dictionary`] (see the module docs).
fn deflate(json: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::fast(), false);
    let mut primed = Vec::new();
    if !run_deflate(
        &mut compress,
        dictionary(),
        &mut primed,
        FlushCompress::Sync,
    ) {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(json.len() / 3 + 64);
    if run_deflate(&mut compress, json, &mut out, FlushCompress::Finish) {
        out
    } else {
        Vec::new()
    }
}

/// Feeds all of `input` to `compress` with `flush`, appending its output to `out`;
/// `false` if the compressor failed (it cannot, on memory).
fn run_deflate(
    compress: &mut Compress,
    input: &[u8],
    out: &mut Vec<u8>,
    flush: FlushCompress,
) -> bool {
    let start = compress.total_in();
    loop {
        out.reserve(input.len().max(64));
        let taken = usize::try_from(compress.total_in() - start).unwrap_or(input.len());
        let rest = input.get(taken..).unwrap_or_default();
        let status = match compress.compress_vec(rest, out, flush) {
            Ok(status) => status,
            Err(_) => return false,
        };
        let all_in = compress.total_in() - start == input.len() as u64;
        match flush {
            FlushCompress::Finish if status == Status::StreamEnd => return true,
            FlushCompress::Finish => {}
            // A sync flush is complete once all input is in and output room was left.
            _ if all_in && out.len() < out.capacity() => return true,
            _ => {}
        }
    }
}

/// The [`dictionary`] as one stored deflate block, built once: what [`inflate`] feeds
/// its inflater first.
fn primer() -> &'static [u8] {
    static PRIMER: OnceLock<Vec<u8>> = OnceLock::new();
    PRIMER.get_or_init(|| {
        let dict = dictionary();
        let len = u16::try_from(dict.len()).unwrap_or(u16::MAX);
        let mut primer = Vec::with_capacity(dict.len() + 5);
        primer.push(0); // BFINAL 0, BTYPE 00 (stored), padded to the byte
        primer.extend_from_slice(&len.to_le_bytes());
        primer.extend_from_slice(&(!len).to_le_bytes());
        primer.extend_from_slice(&dict[..usize::from(len)]);
        primer
    })
}

/// What [`deflate`] made, inflated after the [`dictionary`]: the inflater first reads
/// the dictionary as one stored (uncompressed) deflate block, which puts it in the
/// window exactly as the compressor had it.
fn inflate(deflated: &[u8]) -> Vec<u8> {
    let mut inflate = Decompress::new(false);
    let mut window = vec![0; dictionary().len()];
    if inflate
        .decompress(primer(), &mut window, FlushDecompress::None)
        .is_err()
    {
        return Vec::new();
    }
    drop(window);
    let mut out = Vec::with_capacity(deflated.len() * 4);
    let (in0, mut last) = (inflate.total_in(), (u64::MAX, 0));
    loop {
        out.reserve(deflated.len() * 2 + 256);
        let taken = usize::try_from(inflate.total_in() - in0).unwrap_or(deflated.len());
        let rest = deflated.get(taken..).unwrap_or_default();
        match inflate.decompress_vec(rest, &mut out, FlushDecompress::Finish) {
            Ok(Status::StreamEnd) => return out,
            // No progress with room to spare: the input is cut short.
            Ok(_) if (inflate.total_in(), out.len()) == last => return out,
            Ok(_) => last = (inflate.total_in(), out.len()),
            Err(_) => return Vec::new(),
        }
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

    /// A pod as the API server returns it (admission defaults, managedFields, a
    /// running status): its encoding after the dictionary is far smaller than plain
    /// deflate's, and decodes to the same JSON.
    #[test]
    fn the_dictionary_makes_a_typical_pod_cost_a_fraction() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "6f0c1d2e-aaaa-4bbb-8ccc-0123456789ab",
                "resourceVersion": "48213", "creationTimestamp": "2026-11-30T21:00:00Z",
                "labels": {"app": "web"},
                "managedFields": [{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
                    "time": "2026-11-30T21:00:00Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {},
                            "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {},
                            "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                          "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {},
                          "f:schedulerName": {}, "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}}}]},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                    "resources": {}, "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "volumeMounts": [{"name": "kube-api-access-7xk2p", "readOnly": true,
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
                "dnsPolicy": "ClusterFirst", "enableServiceLinks": true, "nodeName": "vk-1",
                "preemptionPolicy": "PreemptLowerPriority", "priority": 0, "restartPolicy": "Always",
                "schedulerName": "default-scheduler", "securityContext": {}, "serviceAccount": "default",
                "serviceAccountName": "default", "terminationGracePeriodSeconds": 30,
                "tolerations": [
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
                "volumes": [{"name": "kube-api-access-7xk2p", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}]},
            "status": {"phase": "Running", "hostIP": "10.1.2.3", "podIP": "10.244.1.7",
                "podIPs": [{"ip": "10.244.1.7"}], "startTime": "2026-11-30T21:00:01Z", "qosClass": "BestEffort",
                "conditions": [
                    {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-30T21:00:01Z"},
                    {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-30T21:00:02Z"},
                    {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-30T21:00:02Z"},
                    {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-30T21:00:00Z"}],
                "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "started": true,
                    "image": "nginx:1.27", "imageID": "", "containerID": "mock://web-1/web",
                    "state": {"running": {"startedAt": "2026-11-30T21:00:02Z"}}, "lastState": {}}]}
        }))
        .expect("pod");
        let json = serde_json::to_vec(&pod).expect("json");
        let c = Compact::new(&pod);
        assert_eq!(c.json(), json);
        assert_eq!(c.decode(), pod);
        let mut plain = flate2::write::DeflateEncoder::new(Vec::new(), Compression::fast());
        std::io::Write::write_all(&mut plain, &json).expect("deflate");
        let plain = plain.finish().expect("deflate");
        assert!(
            c.len() * 2 < plain.len(),
            "{} bytes after the dictionary, {} by plain deflate, {} as JSON",
            c.len(),
            plain.len(),
            json.len()
        );
    }

    #[test]
    fn large_and_empty_values_round_trip() {
        let mut pod = Pod::default();
        pod.metadata.annotations = Some(
            (0..2000)
                .map(|i| {
                    (
                        format!("example.com/key-{i}"),
                        format!("{i:x}").repeat(i % 97),
                    )
                })
                .collect(),
        );
        let c = Compact::new(&pod);
        assert!(serde_json::to_vec(&pod).expect("json").len() > 200_000);
        assert_eq!(c.decode(), pod);
        assert_eq!(Compact::new(&Pod::default()).decode(), Pod::default());
        assert!(dictionary().len() > 2000 && dictionary().len() < usize::from(u16::MAX));
    }
}
