//! What a container runs: its command line, environment and working directory.
//!
//! * **Command**: `command` + `args` run directly (no shell). Without `command`, the
//!   image's prefix from the `images` table is used: `prefix + args`. Neither is an
//!   error naming the container ([`ProcessError::NoCommand`]).
//! * **Environment**: exactly the container's resolved `env` (vk-core resolved
//!   ConfigMap/Secret/field references, `envFrom` and service links), plus `HOSTNAME`
//!   (the pod name), `PATH` when the pod sets none, `VK_POD_ROOT` (the pod's root, see
//!   [`crate::layout`]) and one `VK_MOUNT_<PATH>` per volume mount.
//! * **Working directory**: `workingDir` inside the pod root when set, else the
//!   container's own `work` directory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::error::ProcessError;
use crate::layout::{PodDir, mount_env_name};
use crate::volumes::safe_relative;

/// The command line of `container`.
///
/// ```
/// use std::collections::BTreeMap;
/// use k8s_openapi::api::core::v1::Container;
/// let images = BTreeMap::from([("python:3".to_owned(), vec!["python3".to_owned()])]);
/// let c = Container {
///     name: "web".into(),
///     image: Some("python:3".into()),
///     args: Some(vec!["-m".into(), "http.server".into()]),
///     ..Default::default()
/// };
/// assert_eq!(vk_process::launch::argv(&c, &images).unwrap(), ["python3", "-m", "http.server"]);
/// ```
pub fn argv(
    container: &Container,
    images: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, ProcessError> {
    let args = container.args.clone().unwrap_or_default();
    if let Some(command) = container.command.as_ref().filter(|c| !c.is_empty()) {
        return Ok(command.iter().cloned().chain(args).collect());
    }
    let image = container.image.clone().unwrap_or_default();
    match images.get(&image) {
        Some(prefix) if !prefix.is_empty() || !args.is_empty() => {
            Ok(prefix.iter().cloned().chain(args).collect())
        }
        _ => Err(ProcessError::NoCommand {
            container: container.name.clone(),
            image,
        }),
    }
}

/// The environment of `container` (see the module docs).
pub fn env(pod: &Pod, container: &Container, dir: &PodDir) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |k: &str, v: String, out: &mut Vec<(String, String)>| {
        if !out.iter().any(|(name, _)| name == k) {
            out.push((k.to_owned(), v));
        }
    };
    for e in container.env.iter().flatten() {
        set(&e.name, e.value.clone().unwrap_or_default(), &mut out);
    }
    set(
        "HOSTNAME",
        pod.metadata.name.clone().unwrap_or_default(),
        &mut out,
    );
    set(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        &mut out,
    );
    if let Some(home) = std::env::var_os("HOME").and_then(|h| h.into_string().ok()) {
        set("HOME", home, &mut out);
    }
    set("VK_POD_ROOT", dir.root().display().to_string(), &mut out);
    for m in container.volume_mounts.iter().flatten() {
        let path = dir.root().join(safe_relative(&m.mount_path));
        set(
            &mount_env_name(&m.mount_path),
            path.display().to_string(),
            &mut out,
        );
    }
    out
}

/// The working directory of `container`.
pub fn cwd(container: &Container, dir: &PodDir) -> PathBuf {
    match container.working_dir.as_deref().filter(|w| !w.is_empty()) {
        Some(w) => dir.root().join(safe_relative(w)),
        None => dir.work(&container.name),
    }
}

/// Every container of the pod (init containers first).
pub fn all_containers(pod: &Pod) -> Vec<&Container> {
    pod.spec
        .iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_wins_and_missing_commands_name_the_container() {
        let images = BTreeMap::from([("img".to_owned(), vec!["run".to_owned()])]);
        let c = Container {
            name: "c".into(),
            image: Some("img".into()),
            command: Some(vec!["sh".into(), "-c".into()]),
            args: Some(vec!["exit 2".into()]),
            ..Default::default()
        };
        assert_eq!(argv(&c, &images).expect("argv"), ["sh", "-c", "exit 2"]);
        let bare = Container {
            name: "lonely".into(),
            image: Some("nginx".into()),
            ..Default::default()
        };
        let e = argv(&bare, &images).expect_err("no command");
        assert!(e.to_string().contains("\"lonely\""), "{e}");
        assert_eq!(
            vk_errdefs::Error::from(e).kind(),
            vk_errdefs::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn env_adds_hostname_and_mounts_after_the_pods_own() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}, {"name": "HOSTNAME", "value": "mine"}],
                "volumeMounts": [{"name": "v", "mountPath": "/etc/x"}]}]}
        }))
        .expect("pod");
        let dir = PodDir::new("/s".as_ref(), "ns", "web", "u");
        let c = &pod.spec.as_ref().expect("spec").containers[0];
        let env = env(&pod, c, &dir);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("HOSTNAME"), Some("mine"));
        assert_eq!(get("VK_MOUNT_ETC_X"), Some("/s/pods/ns_web_u/root/etc/x"));
        assert_eq!(
            cwd(c, &dir),
            PathBuf::from("/s/pods/ns_web_u/containers/c/work")
        );
    }
}
