//! The image's root filesystem: the binary, a non-root user, CA certificates, `/tmp`.

use super::tar::{Entry, Kind};

/// The user and group id the image runs as (no login, no shell).
pub const USER_ID: u32 = 65532;
/// That user's home and the working directory.
pub const HOME: &str = "/home/nonroot";

/// Where the system CA bundle is read from on the build machine (Debian's path), and
/// written to in the image: rustls-native-certs finds it there for outbound HTTPS.
const CA_BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";

/// The sorted entries of the root filesystem for the binary `name`.
pub fn entries(name: &str, binary: Vec<u8>) -> anyhow::Result<Vec<Entry>> {
    let dir = |path: &str, mode, owner| Entry {
        path: path.into(),
        mode,
        uid: owner,
        gid: owner,
        kind: Kind::Dir,
    };
    let file = |path: String, mode, bytes: Vec<u8>| Entry {
        path,
        mode,
        uid: 0,
        gid: 0,
        kind: Kind::File(bytes),
    };
    let mut entries = vec![
        dir("etc", 0o755, 0),
        file(
            "etc/group".into(),
            0o644,
            format!("root:x:0:\nnonroot:x:{USER_ID}:\n").into_bytes(),
        ),
        file(
            "etc/passwd".into(),
            0o644,
            format!(
                "root:x:0:0:root:/root:/sbin/nologin\n\
                 nonroot:x:{USER_ID}:{USER_ID}:nonroot:{HOME}:/sbin/nologin\n"
            )
            .into_bytes(),
        ),
        dir("home", 0o755, 0),
        dir(HOME.trim_start_matches('/'), 0o700, USER_ID),
        dir("tmp", 0o1777, 0),
        dir("usr", 0o755, 0),
        dir("usr/local", 0o755, 0),
        dir("usr/local/bin", 0o755, 0),
        file(format!("usr/local/bin/{name}"), 0o755, binary),
    ];
    let host_bundle = std::path::Path::new("/").join(CA_BUNDLE);
    if let Ok(bundle) = std::fs::read(&host_bundle) {
        entries.push(dir("etc/ssl", 0o755, 0));
        entries.push(dir("etc/ssl/certs", 0o755, 0));
        entries.push(file(CA_BUNDLE.into(), 0o644, bundle));
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_with_parents_before_children_and_a_non_root_home() {
        let entries = entries("vk-x", b"\x7fELF".to_vec()).expect("entries");
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        for (i, p) in paths.iter().enumerate() {
            if let Some((parent, _)) = p.rsplit_once('/') {
                assert!(paths[..i].contains(&parent), "{parent} before {p}");
            }
        }
        let home = entries
            .iter()
            .find(|e| e.path == "home/nonroot")
            .expect("home");
        assert_eq!((home.uid, home.gid), (USER_ID, USER_ID));
        assert!(paths.contains(&"usr/local/bin/vk-x"));
    }
}
