//! `cargo xtask image <provider>`: a minimal OCI image of a provider binary, without
//! Docker. The binary is built static (musl), put in a one-layer root filesystem with a
//! non-root user, and written as an OCI image layout (`target/oci/vk-<provider>/`) and
//! archive (`target/oci/vk-<provider>-<version>.oci.tar`). Timestamps are fixed
//! (`SOURCE_DATE_EPOCH`, else the time of the last commit) and entries sorted, so two
//! builds of the same source give the same digest.

mod elf;
mod metadata;
pub mod oci;
mod rootfs;
pub mod tar;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::paths;
use metadata::CrateInfo;
use oci::{Blob, Layout};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The provider: its directory under `providers/` (`vk-mock`) or its short name
    /// (`mock`).
    pub provider: String,
    /// Where to write the layout and the archive.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Use already built static binaries instead of building one for this machine:
    /// `--binary amd64=path --binary arm64=path` makes a multi-architecture image.
    #[arg(long, value_name = "ARCH=PATH")]
    pub binary: Vec<String>,
    /// The cargo profile the binary is built with (`dist`, the release build without
    /// line tables, is what ships).
    #[arg(long, default_value = "dist")]
    pub profile: String,
}

/// What a build produced.
#[derive(Debug)]
pub struct Built {
    /// The layout directory.
    pub layout: PathBuf,
    /// The archive.
    pub archive: PathBuf,
    /// The digest a registry would show: the manifest's, or the index's when several
    /// architectures are in the image.
    pub digest: String,
    /// The tag (`ref.name`): the crate version.
    pub tag: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let built = build(&args)?;
    println!("layout:  {}:{}", built.layout.display(), built.tag);
    println!("archive: {}", built.archive.display());
    println!("digest:  {}", built.digest);
    Ok(())
}

/// Builds the image `args` describe.
pub fn build(args: &Args) -> anyhow::Result<Built> {
    let info = metadata::provider(&args.provider)?;
    let binaries = if args.binary.is_empty() {
        vec![build_static_binary(&info, &args.profile)?]
    } else {
        args.binary
            .iter()
            .map(|b| parse_binary(b))
            .collect::<anyhow::Result<_>>()?
    };
    let mtime = source_date_epoch()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| paths::target_dir().join("oci"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let mut blobs = BTreeMap::new();
    let mut manifests = Vec::new();
    for (arch, path) in &binaries {
        let binary = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if elf::interpreter(&binary)? {
            bail!(
                "{} is dynamically linked; the image needs a static binary (musl target)",
                path.display()
            );
        }
        let manifest = image_manifest(&info, arch, binary, mtime, &mut blobs)?;
        manifests.push(manifest);
    }
    let annotations = json!({ "org.opencontainers.image.ref.name": info.version });
    let top = if manifests.len() == 1 {
        let (manifest, arch) = &manifests[0];
        manifest.descriptor(BTreeMap::from([
            ("platform", json!({ "architecture": arch, "os": "linux" })),
            ("annotations", annotations),
        ]))
    } else {
        let list: Vec<Value> = manifests
            .iter()
            .map(|(m, arch)| {
                m.descriptor(BTreeMap::from([(
                    "platform",
                    json!({ "architecture": arch, "os": "linux" }),
                )]))
            })
            .collect();
        let index = Blob::json(
            oci::INDEX,
            &json!({ "schemaVersion": 2, "mediaType": oci::INDEX, "manifests": list }),
        )?;
        let d = index.descriptor(BTreeMap::from([("annotations", annotations)]));
        blobs.insert(index.digest.clone(), index);
        d
    };
    let digest = top["digest"].as_str().unwrap_or_default().to_owned();
    for (m, _) in manifests {
        blobs.insert(m.digest.clone(), m);
    }
    let index = serde_json::to_vec(
        &json!({ "schemaVersion": 2, "mediaType": oci::INDEX, "manifests": [top] }),
    )?;
    let layout = Layout { index, blobs };
    let dir = out.join(&info.name);
    layout.write_dir(&dir)?;
    let archive = out.join(format!("{}-{}.oci.tar", info.name, info.version));
    layout.write_archive(&archive, mtime)?;
    Ok(Built {
        layout: dir,
        archive,
        digest,
        tag: info.version,
    })
}

/// One architecture's manifest (and its config and layer, added to `blobs`).
fn image_manifest(
    info: &CrateInfo,
    arch: &str,
    binary: Vec<u8>,
    mtime: u64,
    blobs: &mut BTreeMap<String, Blob>,
) -> anyhow::Result<(Blob, String)> {
    let entries = rootfs::entries(&info.name, binary)?;
    let mut layer_tar = Vec::new();
    tar::write(&mut layer_tar, &entries, mtime).context("writing the layer")?;
    let diff_id = oci::sha256(&layer_tar);
    let layer = Blob::new(oci::LAYER_GZIP, oci::gzip(&layer_tar)?);
    let created = rfc3339(mtime)?;
    let labels = info.labels(&created);
    let config = Blob::json(
        oci::CONFIG,
        &json!({
            "architecture": arch,
            "os": "linux",
            "created": created,
            "config": {
                "User": format!("{}:{}", rootfs::USER_ID, rootfs::USER_ID),
                "Entrypoint": [format!("/usr/local/bin/{}", info.name)],
                "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
                "WorkingDir": rootfs::HOME,
                "ExposedPorts": { "10250/tcp": {} },
                "Labels": labels,
            },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created": created, "created_by": format!("cargo xtask image {}", info.name) }],
        }),
    )?;
    let manifest = Blob::json(
        oci::MANIFEST,
        &json!({
            "schemaVersion": 2,
            "mediaType": oci::MANIFEST,
            "config": config.descriptor(BTreeMap::new()),
            "layers": [layer.descriptor(BTreeMap::new())],
            "annotations": labels,
        }),
    )?;
    blobs.insert(config.digest.clone(), config);
    blobs.insert(layer.digest.clone(), layer);
    Ok((manifest, arch.to_owned()))
}

/// `ARCH=PATH` of `--binary`.
fn parse_binary(arg: &str) -> anyhow::Result<(String, PathBuf)> {
    let (arch, path) = arg
        .split_once('=')
        .with_context(|| format!("--binary {arg}: expected ARCH=PATH (amd64=target/...)"))?;
    if !matches!(arch, "amd64" | "arm64") {
        bail!("--binary {arg}: architecture must be amd64 or arm64");
    }
    Ok((arch.to_owned(), PathBuf::from(path)))
}

/// The musl target of this machine's architecture and its OCI architecture name.
pub fn host_target() -> anyhow::Result<(&'static str, &'static str)> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(("x86_64-unknown-linux-musl", "amd64")),
        "aarch64" => Ok(("aarch64-unknown-linux-musl", "arm64")),
        other => bail!("no static (musl) target known for {other}"),
    }
}

/// `cargo build --profile <profile> --target <musl>` of the provider's binary.
fn build_static_binary(info: &CrateInfo, profile: &str) -> anyhow::Result<(String, PathBuf)> {
    let (target, arch) = host_target()?;
    if crate::tools::on_path("rustup") {
        // Idempotent: a no-op when the target's standard library is installed.
        let status = Command::new("rustup")
            .args(["target", "add", target])
            .status()
            .context("running rustup target add")?;
        if !status.success() {
            bail!("rustup target add {target} failed ({status})");
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--profile",
        profile,
        "--target",
        target,
        "-p",
        &info.name,
        "--bin",
        &info.name,
    ]);
    // C code (ring) for the musl target: Debian's musl-tools names its compiler
    // `musl-gcc`, not `<arch>-linux-musl-gcc` as the cc crate expects.
    let cc_var = format!("CC_{}", target.replace('-', "_"));
    if std::env::var_os(&cc_var).is_none() {
        crate::tools::ensure_packages(&["musl-tools".to_owned()])?;
        cmd.env(&cc_var, "musl-gcc");
    }
    eprintln!("==> building {} for {target}", info.name);
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!(
            "cargo build --target {target} failed ({status}); it needs `rustup target add {target}` \
             and a musl C compiler (Debian: apt-get install musl-tools)"
        );
    }
    // Cargo names the output directory of the `dev` profile `debug`.
    let dir = if profile == "dev" { "debug" } else { profile };
    Ok((
        arch.to_owned(),
        paths::target_dir().join(target).join(dir).join(&info.name),
    ))
}

/// `SOURCE_DATE_EPOCH`, else the committer time of `HEAD`, else 0.
fn source_date_epoch() -> anyhow::Result<u64> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v}"));
    }
    Ok(git(&["log", "-1", "--format=%ct"])
        .and_then(|t| t.parse().ok())
        .unwrap_or(0))
}

/// `git <args>` in the workspace, trimmed, if it succeeds.
pub fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(paths::workspace_root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn rfc3339(secs: u64) -> anyhow::Result<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs)?)?;
    Ok(t.format(&time::format_description::well_known::Rfc3339)?)
}
