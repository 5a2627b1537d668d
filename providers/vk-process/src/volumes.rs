//! Volumes as directories, and mount paths as symlinks in the pod's root.
//!
//! * `emptyDir`: a directory; with `medium: Memory` it lives under `/dev/shm` (tmpfs)
//!   when that exists, else it is a plain directory.
//! * `configMap`, `secret`, `downwardAPI`, `projected` (including `serviceAccountToken`
//!   sources: see [`crate::incluster`]): files written from the source
//!   objects, and **re-written when the sources change** (see [`Materialiser::refresh`];
//!   the provider calls it every `volume_refresh_seconds`). Files are replaced
//!   atomically; keys that disappeared are removed.
//! * `hostPath`: a symlink to the host path (created first for `DirectoryOrCreate`).
//!
//! No mount namespace is used: each `volumeMounts[]` entry becomes a symlink
//! `<pod>/root/<mountPath>` → the volume directory (or its `subPath`), and the process
//! finds it through `VK_POD_ROOT` and `VK_MOUNT_<PATH>` (see [`crate::layout`]).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, ServiceAccountTokenProjection,
    Volume, VolumeMount,
};

use vk_core::env::EnvSource;

use crate::error::ProcessError;
use crate::incluster::{self, TokenSource};
use crate::layout::PodDir;

/// The files of a projected volume: relative path → content.
pub type Files = BTreeMap<PathBuf, Vec<u8>>;

/// Writes a pod's volumes and keeps them up to date.
pub struct Materialiser<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Its directories.
    pub dir: &'a PodDir,
    /// ConfigMaps and Secrets (the core's read-only [`vk_core::ResourceAccess`] in the
    /// binary).
    pub source: &'a dyn EnvSource,
    /// ServiceAccount tokens for projected `serviceAccountToken` sources; without one,
    /// those sources are left out.
    pub tokens: Option<&'a dyn TokenSource>,
}

fn volume_error(volume: &Volume, reason: impl std::fmt::Display) -> ProcessError {
    ProcessError::Volume {
        volume: volume.name.clone(),
        reason: reason.to_string(),
    }
}

fn prepare(path: &Path, r: std::io::Result<()>) -> Result<(), ProcessError> {
    r.map_err(|source| ProcessError::Prepare {
        path: path.to_owned(),
        source,
    })
}

impl Materialiser<'_> {
    fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    fn volumes(&self) -> &[Volume] {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default()
    }

    /// Creates every volume and the pod root's mount symlinks.
    pub async fn create(&self) -> Result<(), ProcessError> {
        for v in self.volumes() {
            let dir = self.dir.volume(&v.name);
            if let Some(empty) = &v.empty_dir {
                self.empty_dir(v, &dir, empty.medium.as_deref() == Some("Memory"))?;
            } else if let Some(host) = &v.host_path {
                let target = PathBuf::from(&host.path);
                if matches!(host.type_.as_deref(), Some("DirectoryOrCreate")) {
                    prepare(&target, std::fs::create_dir_all(&target))?;
                }
                if let Some(parent) = dir.parent() {
                    prepare(parent, std::fs::create_dir_all(parent))?;
                }
                replace_symlink(&target, &dir).map_err(|e| volume_error(v, e))?;
            } else {
                prepare(&dir, std::fs::create_dir_all(&dir))?;
            }
        }
        self.refresh().await?;
        self.link_mounts()
    }

    fn empty_dir(&self, v: &Volume, dir: &Path, memory: bool) -> Result<(), ProcessError> {
        let shm = Path::new("/dev/shm");
        if memory && shm.is_dir() {
            let uid = self.pod.metadata.uid.as_deref().unwrap_or("pod");
            let backing = shm.join("vk-process").join(uid).join(&v.name);
            prepare(&backing, std::fs::create_dir_all(&backing))?;
            if let Some(parent) = dir.parent() {
                prepare(parent, std::fs::create_dir_all(parent))?;
            }
            return replace_symlink(&backing, dir).map_err(|e| volume_error(v, e));
        }
        prepare(dir, std::fs::create_dir_all(dir))
    }

    /// Re-reads the sources of configMap, secret, downwardAPI and projected volumes and
    /// rewrites files whose content changed. Returns how many files changed.
    ///
    /// Every volume is refreshed even when an earlier one fails (a deleted ConfigMap
    /// must not stop a ServiceAccount token from being renewed); the first failure is
    /// returned after all were tried.
    pub async fn refresh(&self) -> Result<usize, ProcessError> {
        let mut changed = 0;
        let mut first_failure = None;
        for v in self.volumes() {
            match self.refresh_one(v).await {
                Ok(n) => changed += n,
                Err(e) => {
                    first_failure.get_or_insert(e);
                }
            }
        }
        match first_failure {
            Some(e) => Err(e),
            None => Ok(changed),
        }
    }

    /// Rewrites the changed files of volume `v`; how many changed.
    async fn refresh_one(&self, v: &Volume) -> Result<usize, ProcessError> {
        match self.files_of(v).await? {
            Some(files) => {
                write_files(&self.dir.volume(&v.name), &files).map_err(|e| volume_error(v, e))
            }
            None => Ok(0),
        }
    }

    async fn files_of(&self, v: &Volume) -> Result<Option<Files>, ProcessError> {
        let ns = self.namespace();
        let mut files = Files::new();
        if let Some(cm) = &v.config_map {
            let found = self
                .source
                .config_map(ns, &cm.name)
                .await
                .map_err(|e| volume_error(v, e))?;
            match found {
                Some(obj) => add_keys(&mut files, config_map_data(&obj), cm.items.as_deref()),
                None if cm.optional == Some(true) => {}
                None => {
                    return Err(volume_error(
                        v,
                        format!("configmap {ns}/{} not found", cm.name),
                    ));
                }
            }
        } else if let Some(sec) = &v.secret {
            let name = sec.secret_name.clone().unwrap_or_default();
            let found = self
                .source
                .secret(ns, &name)
                .await
                .map_err(|e| volume_error(v, e))?;
            match found {
                Some(obj) => add_keys(&mut files, secret_data(&obj), sec.items.as_deref()),
                None if sec.optional == Some(true) => {}
                None => return Err(volume_error(v, format!("secret {ns}/{name} not found"))),
            }
        } else if let Some(d) = &v.downward_api {
            add_downward(&mut files, self.pod, d.items.as_deref().unwrap_or_default());
        } else if let Some(p) = &v.projected {
            for src in p.sources.iter().flatten() {
                if let Some(cm) = &src.config_map {
                    match self
                        .source
                        .config_map(ns, &cm.name)
                        .await
                        .map_err(|e| volume_error(v, e))?
                    {
                        Some(obj) => {
                            add_keys(&mut files, config_map_data(&obj), cm.items.as_deref())
                        }
                        None if cm.optional == Some(true) => {}
                        None => {
                            return Err(volume_error(
                                v,
                                format!("configmap {ns}/{} not found", cm.name),
                            ));
                        }
                    }
                }
                if let Some(sec) = &src.secret {
                    match self
                        .source
                        .secret(ns, &sec.name)
                        .await
                        .map_err(|e| volume_error(v, e))?
                    {
                        Some(obj) => add_keys(&mut files, secret_data(&obj), sec.items.as_deref()),
                        None if sec.optional == Some(true) => {}
                        None => {
                            return Err(volume_error(
                                v,
                                format!("secret {ns}/{} not found", sec.name),
                            ));
                        }
                    }
                }
                if let Some(d) = &src.downward_api {
                    add_downward(&mut files, self.pod, d.items.as_deref().unwrap_or_default());
                }
                if let Some(projection) = &src.service_account_token {
                    let path = safe_relative(&projection.path);
                    let token = self.token(v, projection, &path).await?;
                    files.extend(token.map(|t| (path, t)));
                }
            }
        } else {
            return Ok(None);
        }
        Ok(Some(files))
    }

    /// The token of a `serviceAccountToken` source at `path` of volume `v`: the one
    /// written earlier while it is fresh, else a new one from the TokenRequest API
    /// (see [`crate::incluster`]). `None` without a token source.
    async fn token(
        &self,
        v: &Volume,
        projection: &ServiceAccountTokenProjection,
        path: &Path,
    ) -> Result<Option<Vec<u8>>, ProcessError> {
        let Some(tokens) = self.tokens else {
            return Ok(None);
        };
        if let Ok(current) = std::fs::read(self.dir.volume(&v.name).join(path))
            && !incluster::needs_refresh(&current, std::time::SystemTime::now())
        {
            return Ok(Some(current));
        }
        let account = incluster::service_account(self.pod);
        let answer = tokens
            .request_token(
                self.namespace(),
                account,
                &incluster::token_request(self.pod, projection),
            )
            .await
            .map_err(|e| volume_error(v, e))?;
        match answer.status.map(|s| s.token).filter(|t| !t.is_empty()) {
            Some(token) => Ok(Some(token.into_bytes())),
            None => Err(volume_error(
                v,
                format!("the TokenRequest for serviceaccount {account} returned no token"),
            )),
        }
    }

    /// Creates `<root>/<mountPath>` → volume (or subPath) symlinks for every container.
    fn link_mounts(&self) -> Result<(), ProcessError> {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let containers = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        for c in containers {
            for m in c.volume_mounts.iter().flatten() {
                let link = self.mount_link(m);
                let target = self.mount_target(m);
                if let Some(parent) = link.parent() {
                    prepare(parent, std::fs::create_dir_all(parent))?;
                }
                if m.sub_path.as_deref().is_some_and(|s| !s.is_empty()) && !target.exists() {
                    prepare(&target, std::fs::create_dir_all(&target))?;
                }
                replace_symlink(&target, &link).map_err(|source| ProcessError::Prepare {
                    path: link.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Where a mount's path appears in the pod root.
    pub fn mount_link(&self, m: &VolumeMount) -> PathBuf {
        self.dir.root().join(safe_relative(&m.mount_path))
    }

    fn mount_target(&self, m: &VolumeMount) -> PathBuf {
        let base = self.dir.volume(&m.name);
        match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => base.join(safe_relative(sub)),
            None => base,
        }
    }
}

/// `path` without its root and without `..` components.
pub fn safe_relative(path: &str) -> PathBuf {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn replace_symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    if std::fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    if let Ok(meta) = std::fs::symlink_metadata(link) {
        if meta.is_dir() {
            std::fs::remove_dir_all(link)?;
        } else {
            std::fs::remove_file(link)?;
        }
    }
    std::os::unix::fs::symlink(target, link)
}

fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), v.0.clone());
    }
    out
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}

fn add_keys(files: &mut Files, data: BTreeMap<String, Vec<u8>>, items: Option<&[KeyToPath]>) {
    match items {
        Some(items) if !items.is_empty() => {
            for item in items {
                if let Some(v) = data.get(&item.key) {
                    files.insert(safe_relative(&item.path), v.clone());
                }
            }
        }
        _ => {
            for (k, v) in data {
                files.insert(safe_relative(&k), v);
            }
        }
    }
}

fn add_downward(files: &mut Files, pod: &Pod, items: &[DownwardAPIVolumeFile]) {
    for item in items {
        let Some(field) = &item.field_ref else {
            continue;
        };
        let meta = &pod.metadata;
        let map_text = |m: Option<&BTreeMap<String, String>>| {
            m.into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v:?}\n"))
                .collect::<String>()
        };
        let value = match field.field_path.as_str() {
            "metadata.name" => meta.name.clone().unwrap_or_default(),
            "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
            "metadata.uid" => meta.uid.clone().unwrap_or_default(),
            "metadata.labels" => map_text(meta.labels.as_ref()),
            "metadata.annotations" => map_text(meta.annotations.as_ref()),
            other => match other
                .strip_prefix("metadata.labels['")
                .map(|k| (k, meta.labels.as_ref()))
                .or_else(|| {
                    other
                        .strip_prefix("metadata.annotations['")
                        .map(|k| (k, meta.annotations.as_ref()))
                }) {
                Some((key, map)) => key
                    .strip_suffix("']")
                    .and_then(|k| map.and_then(|m| m.get(k)))
                    .cloned()
                    .unwrap_or_default(),
                None => continue,
            },
        };
        files.insert(safe_relative(&item.path), value.into_bytes());
    }
}

const MANIFEST: &str = ".vk-files.json";

/// Makes `dir` hold exactly `files` (plus anything the process wrote that was never
/// ours): writes changed files atomically, removes files a previous write created that
/// are no longer wanted. Returns how many files were written or removed.
pub fn write_files(dir: &Path, files: &Files) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let manifest = dir.join(MANIFEST);
    let previous: Vec<PathBuf> = crate::shim::read_json(&manifest).unwrap_or_default();
    let mut changed = 0;
    for (rel, content) in files {
        let path = dir.join(rel);
        if std::fs::read(&path).is_ok_and(|old| &old == content) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_file_name(format!(
            ".{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
        ));
        std::fs::write(&tmp, content)?;
        std::fs::rename(&tmp, &path)?;
        changed += 1;
    }
    for old in previous.iter().filter(|p| !files.contains_key(*p)) {
        if std::fs::remove_file(dir.join(old)).is_ok() {
            changed += 1;
        }
    }
    let now: Vec<&PathBuf> = files.keys().collect();
    crate::shim::write_json(&manifest, &now)?;
    Ok(changed)
}

/// Decodes base64 (for tests and tools that hand secrets around as text).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Objects {
        maps: Mutex<BTreeMap<String, ConfigMap>>,
    }

    #[async_trait::async_trait]
    impl EnvSource for Objects {
        async fn config_map(&self, _ns: &str, name: &str) -> vk_errdefs::Result<Option<ConfigMap>> {
            Ok(self.maps.lock().expect("lock").get(name).cloned())
        }
        async fn secret(&self, _ns: &str, name: &str) -> vk_errdefs::Result<Option<Secret>> {
            let data = BTreeMap::from([(
                "token".to_owned(),
                k8s_openapi::ByteString(decode_base64("c2VjcmV0").expect("b64")),
            )]);
            Ok((name == "s").then(|| Secret {
                data: Some(data),
                ..Default::default()
            }))
        }
        async fn services(
            &self,
            _ns: &str,
        ) -> vk_errdefs::Result<Vec<k8s_openapi::api::core::v1::Service>> {
            Ok(Vec::new())
        }
    }

    fn cm(value: &str) -> ConfigMap {
        ConfigMap {
            data: Some(BTreeMap::from([("app.conf".to_owned(), value.to_owned())])),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_failing_volume_does_not_stop_the_others_from_refreshing() {
        let tmp = tempfile::tempdir().expect("tmp");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {
                "containers": [{"name": "c", "volumeMounts": [
                    {"name": "first", "mountPath": "/first"},
                    {"name": "second", "mountPath": "/second"},
                ]}],
                "volumes": [
                    {"name": "first", "configMap": {"name": "gone"}},
                    {"name": "second", "configMap": {"name": "m"}},
                ]
            }
        }))
        .expect("pod");
        let objects = Objects::default();
        objects
            .maps
            .lock()
            .expect("lock")
            .extend([("gone".to_owned(), cm("g")), ("m".to_owned(), cm("v1"))]);
        let dir = PodDir::new(tmp.path(), "ns", "p", "u");
        let m = Materialiser {
            pod: &pod,
            dir: &dir,
            source: &objects,
            tokens: None,
        };
        m.create().await.expect("create");
        {
            let mut maps = objects.maps.lock().expect("lock");
            maps.remove("gone");
            maps.insert("m".into(), cm("v2"));
        }
        assert!(
            m.refresh().await.is_err(),
            "the deleted ConfigMap is reported"
        );
        let second = std::fs::read_to_string(dir.root().join("second/app.conf")).expect("read");
        assert_eq!(
            second, "v2",
            "the volume after the failing one was refreshed"
        );
    }

    #[tokio::test]
    async fn volumes_are_written_linked_and_refreshed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"a": "b"}},
            "spec": {
                "containers": [{"name": "c", "volumeMounts": [
                    {"name": "cfg", "mountPath": "/etc/cfg"},
                    {"name": "sec", "mountPath": "/var/run/secret"},
                    {"name": "info", "mountPath": "/info"},
                    {"name": "scratch", "mountPath": "/data", "subPath": "sub"},
                ]}],
                "volumes": [
                    {"name": "cfg", "configMap": {"name": "m"}},
                    {"name": "sec", "secret": {"secretName": "s"}},
                    {"name": "info", "downwardAPI": {"items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                    {"name": "scratch", "emptyDir": {}},
                ]
            }
        }))
        .expect("pod");
        let objects = Objects::default();
        objects
            .maps
            .lock()
            .expect("lock")
            .insert("m".into(), cm("v1"));
        let dir = PodDir::new(tmp.path(), "ns", "p", "u");
        let m = Materialiser {
            pod: &pod,
            dir: &dir,
            source: &objects,
            tokens: None,
        };
        m.create().await.expect("create");
        let root = dir.root();
        let read = |p: &str| std::fs::read_to_string(root.join(p)).expect(p);
        assert_eq!(read("etc/cfg/app.conf"), "v1");
        assert_eq!(read("var/run/secret/token"), "secret");
        assert_eq!(read("info/name"), "p");
        assert_eq!(read("info/labels"), "a=\"b\"\n");
        assert!(root.join("data").is_dir());
        assert!(dir.volume("scratch").join("sub").is_dir());
        assert_eq!(m.refresh().await.expect("refresh"), 0);
        objects
            .maps
            .lock()
            .expect("lock")
            .insert("m".into(), cm("v2"));
        assert_eq!(m.refresh().await.expect("refresh"), 1);
        assert_eq!(read("etc/cfg/app.conf"), "v2");
    }

    /// Issues JWT-shaped tokens: `iat` now, expiring after `lifetime` seconds.
    struct Tokens {
        lifetime: u64,
        requests: Mutex<Vec<(String, String, TokenRequest)>>,
    }

    #[async_trait::async_trait]
    impl TokenSource for Tokens {
        async fn request_token(
            &self,
            namespace: &str,
            service_account: &str,
            request: &TokenRequest,
        ) -> vk_errdefs::Result<TokenRequest> {
            let mut requests = self.requests.lock().expect("lock");
            requests.push((namespace.into(), service_account.into(), request.clone()));
            let iat = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs();
            let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
                r#"{{"iat":{iat},"exp":{},"n":{}}}"#,
                iat + self.lifetime,
                requests.len()
            ));
            let mut answer = request.clone();
            answer.status = Some(k8s_openapi::api::authentication::v1::TokenRequestStatus {
                token: format!("h.{claims}.s"),
                expiration_timestamp: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ),
            });
            Ok(answer)
        }
    }

    #[tokio::test]
    async fn service_account_tokens_are_requested_for_the_pod_and_renewed_when_old() {
        let tmp = tempfile::tempdir().expect("tmp");
        // What the ServiceAccount admission plugin adds (Kubernetes >= 1.21).
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {
                "serviceAccountName": "robot",
                "containers": [{"name": "c", "volumeMounts": [{"name": "kube-api-access-x",
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]}],
                "volumes": [{"name": "kube-api-access-x", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}
                ]}}]
            }
        }))
        .expect("pod");
        let objects = Objects::default();
        objects.maps.lock().expect("lock").insert(
            "kube-root-ca.crt".into(),
            ConfigMap {
                data: Some(BTreeMap::from([("ca.crt".to_owned(), "PEM".to_owned())])),
                ..Default::default()
            },
        );
        let dir = PodDir::new(tmp.path(), "ns", "p", "u");
        let read = |p: &str| {
            std::fs::read_to_string(
                dir.root()
                    .join("var/run/secrets/kubernetes.io/serviceaccount")
                    .join(p),
            )
            .expect(p)
        };

        // A fresh token is kept across refreshes.
        let fresh = Tokens {
            lifetime: 3600,
            requests: Mutex::default(),
        };
        let m = Materialiser {
            pod: &pod,
            dir: &dir,
            source: &objects,
            tokens: Some(&fresh),
        };
        m.create().await.expect("create");
        assert_eq!(read("ca.crt"), "PEM");
        assert_eq!(read("namespace"), "ns");
        let first = read("token");
        assert!(!needs_refresh_now(&first), "{first}");
        assert_eq!(m.refresh().await.expect("refresh"), 0);
        {
            let requests = fresh.requests.lock().expect("lock");
            assert_eq!(requests.len(), 1);
            let (ns, account, request) = &requests[0];
            assert_eq!((ns.as_str(), account.as_str()), ("ns", "robot"));
            assert_eq!(request.spec.expiration_seconds, Some(3607));
            let bound = request.spec.bound_object_ref.clone().expect("bound");
            assert_eq!(bound.kind.as_deref(), Some("Pod"));
            assert_eq!(
                (bound.name.as_deref(), bound.uid.as_deref()),
                (Some("p"), Some("u"))
            );
        }

        // A token past 80 % of its lifetime is replaced.
        let old = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"iat":0,"exp":1}"#);
        std::fs::write(
            dir.volume("kube-api-access-x").join("token"),
            format!("h.{old}.s"),
        )
        .expect("old token");
        assert_eq!(m.refresh().await.expect("refresh"), 1);
        assert_ne!(read("token"), first);
        assert!(!needs_refresh_now(&read("token")));
        assert_eq!(fresh.requests.lock().expect("lock").len(), 2);
    }

    fn needs_refresh_now(token: &str) -> bool {
        incluster::needs_refresh(token.as_bytes(), std::time::SystemTime::now())
    }

    #[test]
    fn paths_cannot_escape() {
        assert_eq!(safe_relative("/a/../b/./c"), PathBuf::from("a/b/c"));
    }
}
