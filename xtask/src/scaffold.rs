//! `cargo xtask new-provider <name>`: a new provider crate from `xtask/templates/provider`,
//! inside the workspace (`providers/vk-<name>`, a member using workspace dependencies) or
//! outside it (`--out DIR`: a standalone crate with crates.io versions taken from the
//! workspace; `--local` patches the vk-* crates to this checkout).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};

use crate::paths;
use crate::release::LIBRARY_CRATES;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Short provider name: lowercase letters, digits and `-` (`acme` → crate `vk-acme`).
    pub name: String,
    /// Write a standalone crate into DIR (must not exist or be empty) instead of
    /// `providers/vk-<name>` in this workspace.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// With --out: patch the vk-* crates to this checkout (`[patch.crates-io]`) and copy
    /// its Cargo.lock, to build before they are published.
    #[arg(long, requires = "out")]
    pub local: bool,
}

/// The template files and where they go in the new crate.
const FILES: &[(&str, &str)] = &[
    ("src/main.rs", include_str!("../templates/provider/main.rs")),
    ("src/lib.rs", include_str!("../templates/provider/lib.rs")),
    (
        "src/config.rs",
        include_str!("../templates/provider/config.rs"),
    ),
    (
        "src/provider.rs",
        include_str!("../templates/provider/provider.rs"),
    ),
    (
        "tests/conformance.rs",
        include_str!("../templates/provider/conformance.rs"),
    ),
    ("README.md", include_str!("../templates/provider/README.md")),
    (
        "CHANGELOG.md",
        include_str!("../templates/provider/CHANGELOG.md"),
    ),
];

/// Dependencies of the generated crate (all in `[workspace.dependencies]`), with the
/// features it adds.
const DEPENDENCIES: &[(&str, &[&str])] = &[
    ("vk-core", &[]),
    ("vk-errdefs", &[]),
    ("vk-cli", &[]),
    // The binary chooses the Kubernetes version (library crates never do).
    ("k8s-openapi", &["earliest"]),
    ("async-trait", &[]),
    ("serde", &[]),
];
const DEV_DEPENDENCIES: &[(&str, &[&str])] = &[("vk-testkit", &[]), ("tokio", &[])];

/// The names a provider `name` gives the generated code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `acme-cloud`.
    pub name: String,
    /// `vk-acme-cloud`.
    pub krate: String,
    /// `AcmeCloud`.
    pub type_name: String,
    /// `ACME_CLOUD`.
    pub env: String,
}

impl Names {
    /// Validates `name` (a leading `vk-` is dropped).
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let name = name.strip_prefix("vk-").unwrap_or(name);
        ensure!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && !name.ends_with('-')
                && !name.contains("--"),
            "provider name {name:?}: lowercase letters, digits and single dashes, starting with a letter"
        );
        let type_name = name
            .split('-')
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        Ok(Self {
            name: name.to_owned(),
            krate: format!("vk-{name}"),
            type_name,
            env: name.replace('-', "_").to_ascii_uppercase(),
        })
    }

    fn render(&self, template: &str) -> String {
        template
            .replace("{{crate_ident}}", &self.krate.replace('-', "_"))
            .replace("{{crate}}", &self.krate)
            .replace("{{Type}}", &self.type_name)
            .replace("{{ENV}}", &self.env)
            .replace("{{name}}", &self.name)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let names = Names::new(&args.name)?;
    let root = paths::workspace_root();
    let dir = match &args.out {
        Some(out) => out.clone(),
        None => root.join("providers").join(&names.krate),
    };
    if dir.exists() && fs::read_dir(&dir)?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    let workspace = read_table(&root.join("Cargo.toml"))?;
    let manifest = match &args.out {
        None => member_manifest(&names),
        Some(_) => standalone_manifest(&names, &workspace, args.local.then_some(root.as_path()))?,
    };
    write(&dir.join("Cargo.toml"), &manifest)?;
    for (path, template) in FILES {
        write(&dir.join(path), &names.render(template))?;
    }
    let license = root.join("LICENSE");
    match &args.out {
        None => {
            std::os::unix::fs::symlink("../../LICENSE", dir.join("LICENSE"))
                .context("linking LICENSE")?;
            add_member(
                &root.join("Cargo.toml"),
                &format!("providers/{}", names.krate),
            )?;
        }
        Some(_) => {
            fs::copy(&license, dir.join("LICENSE")).context("copying LICENSE")?;
            if args.local {
                fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))
                    .context("copying Cargo.lock")?;
            }
        }
    }
    eprintln!("==> {} written to {}", names.krate, dir.display());
    eprintln!(
        "    next: edit src/provider.rs; `cargo test --test conformance` with a control plane up"
    );
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn read_table(path: &Path) -> anyhow::Result<toml::Table> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.parse()
        .with_context(|| format!("parsing {}", path.display()))
}

fn package_header(names: &Names) -> String {
    format!(
        "[package]\nname = \"{krate}\"\ndescription = \"A Virtual Kubelet provider for {name}.\"\n\
         # Released on its own (tag {krate}-v<version>); see CHANGELOG.md.\nversion = \"0.1.0\"\n",
        krate = names.krate,
        name = names.name
    )
}

/// `Cargo.toml` of a workspace member.
fn member_manifest(names: &Names) -> String {
    let mut m = package_header(names);
    for key in [
        "edition",
        "rust-version",
        "license",
        "repository",
        "homepage",
        "keywords",
        "categories",
    ] {
        m += &format!("{key}.workspace = true\n");
    }
    m += "readme = \"README.md\"\n";
    let section = |title: &str, deps: &[(&str, &[&str])]| {
        let mut s = format!("\n[{title}]\n");
        for (dep, features) in deps {
            if features.is_empty() {
                s += &format!("{dep}.workspace = true\n");
            } else {
                s += &format!(
                    "{dep} = {{ workspace = true, features = {} }}\n",
                    strings(features)
                );
            }
        }
        s
    };
    m += &section("dependencies", DEPENDENCIES);
    m += &section("dev-dependencies", DEV_DEPENDENCIES);
    m += "\n[lints]\nworkspace = true\n";
    m
}

/// `Cargo.toml` of a standalone crate: each dependency as the workspace declares it,
/// without its path; with `local`, the vk-* crates patched to that checkout.
fn standalone_manifest(
    names: &Names,
    workspace: &toml::Table,
    local: Option<&Path>,
) -> anyhow::Result<String> {
    let ws = workspace
        .get("workspace")
        .and_then(|w| w.as_table())
        .context("no [workspace]")?;
    let package = ws
        .get("package")
        .and_then(|p| p.as_table())
        .context("no [workspace.package]")?;
    let deps = ws
        .get("dependencies")
        .and_then(|d| d.as_table())
        .context("no [workspace.dependencies]")?;
    let mut m = package_header(names);
    for key in ["edition", "rust-version", "license"] {
        if let Some(value) = package.get(key) {
            m += &format!("{key} = {value}\n");
        }
    }
    m += "readme = \"README.md\"\n";
    let section = |title: &str, list: &[(&str, &[&str])]| -> anyhow::Result<String> {
        let mut s = format!("\n[{title}]\n");
        for (dep, extra) in list {
            let spec = deps
                .get(*dep)
                .with_context(|| format!("{dep} not in [workspace.dependencies]"))?;
            s += &format!("{dep} = {}\n", inline_without_path(spec, extra)?);
        }
        Ok(s)
    };
    m += &section("dependencies", DEPENDENCIES)?;
    m += &section("dev-dependencies", DEV_DEPENDENCIES)?;
    m += "\n[lints.rust]\nunsafe_code = \"forbid\"\nmissing_docs = \"warn\"\n";
    m += "\n# Its own workspace, wherever it is put.\n[workspace]\n";
    if let Some(root) = local {
        m += "\n# The vk-* crates of a local checkout, before (or instead of) crates.io.\n[patch.crates-io]\n";
        for krate in LIBRARY_CRATES {
            let path = root.join("crates").join(krate);
            m += &format!(
                "{krate} = {{ path = {} }}\n",
                quote(&path.to_string_lossy())
            );
        }
    }
    Ok(m)
}

/// A dependency spec as an inline table without `path`, with `extra` features added.
fn inline_without_path(spec: &toml::Value, extra: &[&str]) -> anyhow::Result<String> {
    let mut table = match spec {
        toml::Value::String(version) => {
            let mut t = toml::Table::new();
            t.insert("version".into(), toml::Value::String(version.clone()));
            t
        }
        toml::Value::Table(t) => t.clone(),
        other => bail!("unexpected dependency spec {other}"),
    };
    table.remove("path");
    ensure!(
        table.contains_key("version"),
        "dependency without a version: {spec}"
    );
    if !extra.is_empty() {
        let mut features: Vec<String> = table
            .get("features")
            .and_then(|f| f.as_array())
            .map(|f| {
                f.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        features.extend(extra.iter().map(|f| (*f).to_owned()));
        table.insert(
            "features".into(),
            toml::Value::Array(features.into_iter().map(toml::Value::String).collect()),
        );
    }
    let fields: Vec<String> = table
        .iter()
        .map(|(k, v)| Ok(format!("{k} = {}", render_value(v)?)))
        .collect::<anyhow::Result<_>>()?;
    Ok(format!("{{ {} }}", fields.join(", ")))
}

fn render_value(v: &toml::Value) -> anyhow::Result<String> {
    Ok(match v {
        toml::Value::String(s) => quote(s),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => {
            let items: Vec<String> = items
                .iter()
                .map(render_value)
                .collect::<anyhow::Result<_>>()?;
            format!("[{}]", items.join(", "))
        }
        other => bail!("unexpected value in a dependency spec: {other}"),
    })
}

fn quote(s: &str) -> String {
    format!("{:?}", s)
}

fn strings(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// Adds `member` to the root manifest's `members` list (before `"xtask"`).
fn add_member(root_manifest: &Path, member: &str) -> anyhow::Result<()> {
    let text = fs::read_to_string(root_manifest).context("reading Cargo.toml")?;
    let line = format!("    \"{member}\",\n");
    if text.contains(&line) {
        return Ok(());
    }
    let anchor = "    \"xtask\",\n";
    ensure!(
        text.contains(anchor),
        "Cargo.toml: no `\"xtask\",` line in members to insert before"
    );
    fs::write(
        root_manifest,
        text.replacen(anchor, &format!("{line}{anchor}"), 1),
    )
    .context("writing Cargo.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_provider_name() {
        let n = Names::new("vk-acme-cloud").expect("valid");
        assert_eq!(
            (n.name.as_str(), n.krate.as_str()),
            ("acme-cloud", "vk-acme-cloud")
        );
        assert_eq!(
            (n.type_name.as_str(), n.env.as_str()),
            ("AcmeCloud", "ACME_CLOUD")
        );
        for bad in ["", "Acme", "1acme", "acme-", "a--b", "a_b"] {
            assert!(Names::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn templates_leave_no_placeholder() {
        let n = Names::new("acme").expect("valid");
        for (path, template) in FILES {
            assert!(!n.render(template).contains("{{"), "{path}");
        }
    }

    #[test]
    fn standalone_manifest_enables_one_k8s_version_and_no_paths() {
        let ws = read_table(&paths::workspace_root().join("Cargo.toml")).expect("workspace");
        let n = Names::new("acme").expect("valid");
        let m = standalone_manifest(&n, &ws, None).expect("manifest");
        let parsed: toml::Table = m.parse().expect("valid TOML");
        let k8s = &parsed["dependencies"]["k8s-openapi"];
        assert_eq!(k8s["default-features"].as_bool(), Some(false));
        let features: Vec<&str> = k8s["features"]
            .as_array()
            .expect("features")
            .iter()
            .filter_map(|f| f.as_str())
            .collect();
        assert!(features.contains(&"earliest"), "{features:?}");
        assert!(!m.contains("path ="), "{m}");
        assert!(parsed["dependencies"]["vk-core"]["version"].is_str());
        let local = standalone_manifest(&n, &ws, Some(Path::new("/src/vk"))).expect("manifest");
        let parsed: toml::Table = local.parse().expect("valid TOML");
        assert_eq!(
            parsed["patch"]["crates-io"]["vk-core"]["path"].as_str(),
            Some("/src/vk/crates/vk-core")
        );
    }

    #[test]
    fn member_manifest_uses_workspace_dependencies() {
        let m = member_manifest(&Names::new("acme").expect("valid"));
        let parsed: toml::Table = m.parse().expect("valid TOML");
        assert_eq!(parsed["package"]["version"].as_str(), Some("0.1.0"));
        assert_eq!(
            parsed["dependencies"]["vk-core"]["workspace"].as_bool(),
            Some(true)
        );
        assert_eq!(parsed["lints"]["workspace"].as_bool(), Some(true));
    }
}
