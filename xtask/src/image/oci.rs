//! The OCI image layout (image-spec v1.1 "image-layout.md"): `oci-layout`, `index.json`
//! and content-addressed `blobs/sha256/<hex>`, written with canonical JSON (sorted keys,
//! no whitespace) so that the same inputs always give the same digests.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::tar;

/// Media types of the image-spec.
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An image manifest.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An image configuration.
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// A gzip-compressed layer tar.
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A content-addressed blob: its bytes, digest and media type.
#[derive(Debug, Clone)]
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The media type a descriptor of it carries.
    pub media_type: &'static str,
}

impl Blob {
    /// A blob of `bytes`.
    pub fn new(media_type: &'static str, bytes: Vec<u8>) -> Self {
        Self {
            digest: sha256(&bytes),
            bytes,
            media_type,
        }
    }

    /// A blob of canonical JSON.
    pub fn json(media_type: &'static str, value: &Value) -> anyhow::Result<Self> {
        Ok(Self::new(
            media_type,
            serde_json::to_vec(value).context("serializing JSON")?,
        ))
    }

    /// Its descriptor, with extra fields (platform, annotations).
    pub fn descriptor(&self, extra: BTreeMap<&str, Value>) -> Value {
        let mut d = json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.bytes.len(),
        });
        if let Value::Object(map) = &mut d {
            for (k, v) in extra {
                map.insert(k.to_owned(), v);
            }
        }
        d
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Gzip with a fixed header (no name, mtime 0) and level, so the output depends on the
/// input only.
pub fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).context("compressing a layer")?;
    encoder.finish().context("compressing a layer")
}

/// An image layout in memory: the top-level `index.json` and every blob.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `index.json`'s bytes.
    pub index: Vec<u8>,
    /// Every blob, by digest (sorted).
    pub blobs: BTreeMap<String, Blob>,
}

impl Layout {
    /// The layout's tar entries (`blobs/`, `index.json`, `oci-layout`), sorted.
    pub fn entries(&self) -> Vec<tar::Entry> {
        let file = |path: String, bytes: Vec<u8>| tar::Entry {
            path,
            mode: 0o644,
            uid: 0,
            gid: 0,
            kind: tar::Kind::File(bytes),
        };
        let dir = |path: &str| tar::Entry {
            path: path.into(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            kind: tar::Kind::Dir,
        };
        let mut entries = vec![dir("blobs"), dir("blobs/sha256")];
        for blob in self.blobs.values() {
            let hex = blob.digest.trim_start_matches("sha256:");
            entries.push(file(format!("blobs/sha256/{hex}"), blob.bytes.clone()));
        }
        entries.push(file("index.json".into(), self.index.clone()));
        entries.push(file("oci-layout".into(), OCI_LAYOUT.as_bytes().to_vec()));
        entries
    }

    /// Writes the layout into directory `dir` (emptied first).
    pub fn write_dir(&self, dir: &Path) -> anyhow::Result<()> {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
        }
        for entry in self.entries() {
            let path = dir.join(&entry.path);
            match entry.kind {
                tar::Kind::Dir => fs::create_dir_all(&path),
                tar::Kind::File(bytes) => fs::write(&path, bytes),
            }
            .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Writes the layout as one tar archive (what `skopeo`'s `oci-archive:` reads).
    pub fn write_archive(&self, path: &Path, mtime: u64) -> anyhow::Result<()> {
        let mut bytes = Vec::new();
        tar::write(&mut bytes, &self.entries(), mtime).context("writing the archive")?;
        fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
    }
}

const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_the_empty_string() {
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn gzip_is_deterministic_and_has_no_timestamp() {
        let a = gzip(b"layer").expect("gzip");
        assert_eq!(a, gzip(b"layer").expect("gzip"));
        // RFC 1952: bytes 4..8 are MTIME.
        assert_eq!(&a[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn descriptors_carry_size_digest_and_extras() {
        let blob = Blob::new(CONFIG, b"{}".to_vec());
        let d = blob.descriptor(BTreeMap::from([("platform", json!({"os": "linux"}))]));
        assert_eq!(d["size"], 2);
        assert_eq!(d["digest"], sha256(b"{}"));
        assert_eq!(d["platform"]["os"], "linux");
    }
}
