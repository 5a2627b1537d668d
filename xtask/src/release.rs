//! Releases: what a tag releases (`cargo xtask release-plan <tag>`), the crate policy
//! every release relies on, and the dry run of a release CI performs
//! (`cargo xtask release-check`).
//!
//! * Library crates share `workspace.package.version` and the tag `vk-v<version>`.
//! * Each provider under `providers/` has its own `version`, `CHANGELOG.md` and tag
//!   `vk-<provider>-v<version>`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, ensure};

use crate::{ci, image, paths};

/// The library crates, in dependency order (the order they are published in).
pub const LIBRARY_CRATES: &[&str] = &[
    "vk-errdefs",
    "vk-core",
    "vk-trace",
    "vk-node-api",
    "vk-cli",
    "vk-testkit",
];

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// A release tag: `vk-v<version>` (library crates) or `vk-<provider>-v<version>`.
    pub tag: String,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Providers whose image to build (default: every crate under providers/).
    #[arg(long = "provider")]
    pub providers: Vec<String>,
}

/// What a tag releases.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Every library crate, in dependency order.
    Libraries { version: String },
    /// One provider: its crate, binaries and image.
    Provider { name: String, version: String },
}

/// Parses a tag and checks it against the crates' versions.
pub fn plan(tag: &str) -> anyhow::Result<Plan> {
    let (prefix, version) = tag.rsplit_once("-v").with_context(|| {
        format!("tag {tag}: expected vk-v<version> or vk-<provider>-v<version>")
    })?;
    if prefix == "vk" {
        let declared = workspace_version()?;
        ensure!(
            declared == version,
            "tag {tag}: the library crates are at {declared}"
        );
        return Ok(Plan::Libraries {
            version: version.to_owned(),
        });
    }
    ensure!(
        prefix.starts_with("vk-"),
        "tag {tag}: names no vk-<provider>"
    );
    let dir = paths::workspace_root().join("providers").join(prefix);
    let declared = package_version(&dir.join("Cargo.toml"))?
        .with_context(|| format!("{}: provider crates carry their own version", dir.display()))?;
    ensure!(declared == version, "tag {tag}: {prefix} is at {declared}");
    Ok(Plan::Provider {
        name: prefix.to_owned(),
        version: version.to_owned(),
    })
}

pub fn run_plan(args: PlanArgs) -> anyhow::Result<()> {
    match plan(&args.tag)? {
        Plan::Libraries { version } => {
            println!(
                "kind=libraries\nversion={version}\ncrates={}",
                LIBRARY_CRATES.join(" ")
            );
        }
        Plan::Provider { name, version } => {
            println!("kind=provider\nversion={version}\ncrates={name}\nprovider={name}");
        }
    }
    Ok(())
}

/// The crate policy, then `cargo publish --dry-run` of every crate in dependency order,
/// then every provider's image.
pub fn run_check(args: CheckArgs) -> anyhow::Result<()> {
    let problems = policy_problems()?;
    ensure!(
        problems.is_empty(),
        "crate policy:\n  {}",
        problems.join("\n  ")
    );
    eprintln!("==> crate policy: ok");
    ci::step(
        "cargo publish --dry-run (every crate, dependency order)",
        &[
            "publish",
            "--workspace",
            "--exclude",
            "xtask",
            "--dry-run",
            "--allow-dirty",
        ],
    )?;
    let providers = if args.providers.is_empty() {
        provider_dirs()?
    } else {
        args.providers
    };
    ci::step(
        "image tests (reproducible, skopeo inspect, umoci unpack, --version from the rootfs)",
        &["test", "-p", "xtask", "--test", "image", "--", "--ignored"],
    )?;
    for provider in providers {
        let built = image::build(&image::Args {
            provider,
            out: None,
            binary: Vec::new(),
            profile: "dist".into(),
        })?;
        eprintln!("    image {}: {}", built.archive.display(), built.digest);
    }
    Ok(())
}

/// Every provider crate directory name under `providers/`.
pub fn provider_dirs() -> anyhow::Result<Vec<String>> {
    let dir = paths::workspace_root().join("providers");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.path().join("Cargo.toml").is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Everything wrong with the crates' release metadata, one line each.
pub fn policy_problems() -> anyhow::Result<Vec<String>> {
    let root = paths::workspace_root();
    let license = std::fs::read(root.join("LICENSE")).context("reading LICENSE")?;
    let mut problems = Vec::new();
    let mut crate_dirs: Vec<PathBuf> = LIBRARY_CRATES
        .iter()
        .map(|c| root.join("crates").join(c))
        .collect();
    crate_dirs.extend(
        provider_dirs()?
            .iter()
            .map(|p| root.join("providers").join(p)),
    );
    for dir in &crate_dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if std::fs::read(dir.join("LICENSE")).ok().as_ref() != Some(&license) {
            problems.push(format!("{name}: LICENSE missing or not the workspace's"));
        }
        let manifest = read_manifest(&dir.join("Cargo.toml"))?;
        let uses_k8s = manifest
            .get("dependencies")
            .and_then(|d| d.get("k8s-openapi"))
            .is_some();
        let is_provider = dir.starts_with(root.join("providers"));
        if is_provider {
            if package_version(&dir.join("Cargo.toml"))?.is_none() {
                problems.push(format!("{name}: a provider needs its own version"));
            }
            if !dir.join("CHANGELOG.md").is_file() {
                problems.push(format!("{name}: CHANGELOG.md missing"));
            }
        } else if uses_k8s {
            let features = manifest
                .get("package")
                .and_then(|p| p.get("metadata"))
                .and_then(|m| m.get("docs"))
                .and_then(|d| d.get("rs"))
                .and_then(|d| d.get("features"))
                .and_then(|f| f.as_array())
                .map(|f| f.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>())
                .unwrap_or_default();
            if features != ["k8s-openapi/latest"] {
                problems.push(format!(
                    "{name}: [package.metadata.docs.rs] features must be [\"k8s-openapi/latest\"]"
                ));
            }
            if !ci::K8S_LIBRARY_CRATES.contains(&name.as_str()) {
                problems.push(format!("{name}: missing from ci::K8S_LIBRARY_CRATES"));
            }
        }
    }
    Ok(problems)
}

fn read_manifest(path: &Path) -> anyhow::Result<toml::Table> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.parse()
        .with_context(|| format!("parsing {}", path.display()))
}

/// The crate's own `version` (`None` when it is `version.workspace = true`).
fn package_version(manifest: &Path) -> anyhow::Result<Option<String>> {
    let manifest = read_manifest(manifest)?;
    Ok(manifest
        .get("package")
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_owned))
}

fn workspace_version() -> anyhow::Result<String> {
    let manifest = read_manifest(&paths::workspace_root().join("Cargo.toml"))?;
    manifest
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .context("workspace.package.version missing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_follows_the_crate_policy() {
        assert_eq!(policy_problems().expect("policy"), Vec::<String>::new());
    }

    #[test]
    fn tags_name_the_crates_they_release() {
        let libs = workspace_version().expect("version");
        assert_eq!(
            plan(&format!("vk-v{libs}")).expect("library tag"),
            Plan::Libraries {
                version: libs.clone()
            }
        );
        let mock = package_version(&paths::workspace_root().join("providers/vk-mock/Cargo.toml"))
            .expect("read")
            .expect("own version");
        assert_eq!(
            plan(&format!("vk-mock-v{mock}")).expect("provider tag"),
            Plan::Provider {
                name: "vk-mock".into(),
                version: mock
            }
        );
        assert!(
            plan("vk-mock-v999.0.0").is_err(),
            "a tag must match the crate version"
        );
        assert!(plan("vk-nope-v0.1.0").is_err());
        assert!(plan("v0.1.0").is_err());
    }

    #[test]
    fn library_crates_are_listed_in_dependency_order() {
        // Each library crate's vk-* dependencies come earlier in LIBRARY_CRATES.
        for (i, krate) in LIBRARY_CRATES.iter().enumerate() {
            let manifest = read_manifest(
                &paths::workspace_root()
                    .join("crates")
                    .join(krate)
                    .join("Cargo.toml"),
            )
            .expect("manifest");
            let deps = manifest
                .get("dependencies")
                .and_then(|d| d.as_table())
                .expect("deps");
            for dep in deps.keys().filter(|d| d.starts_with("vk-")) {
                let at = LIBRARY_CRATES
                    .iter()
                    .position(|c| c == dep)
                    .expect("a library crate");
                assert!(at < i, "{krate} depends on {dep}, listed after it");
            }
        }
    }
}
