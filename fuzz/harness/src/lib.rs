//! # vk-fuzz-harness: the bodies of the fuzz targets
//!
//! Each fuzz target feeds hostile input to one parser of the project and checks what
//! must hold whatever the input: no panic, bounded memory, and where the parser has an
//! inverse, that the inverse round-trips. The libFuzzer binaries in `fuzz/fuzz_targets/`
//! are one-line wrappers around these functions, and the workspace's corpus test
//! (`cargo test -p xtask --lib`) runs every file of `fuzz/corpus/<target>/` through the
//! same functions, so CI checks the corpus without cargo-fuzz or nightly.
//!
//! A function returns normally when the input was handled as it should be (accepted
//! or refused); it panics when a property is violated, which libFuzzer reports as a
//! crash.
//!
//! ```
//! for target in &vk_fuzz_harness::TARGETS {
//!     (target.run)(b"");
//!     (target.run)(b"\x80\x03\x00\x01 not a frame");
//! }
//! ```

pub mod config;
pub mod options;
pub mod quantity;
pub mod spdy;
pub mod ws;

/// A fuzz target: its name (the `[[bin]]` of `fuzz/Cargo.toml`, the directory of its
/// corpus) and its body.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name of the target.
    pub name: &'static str,
    /// What it exercises, for listings.
    pub about: &'static str,
    /// The body: runs one input, panics on a violated property.
    pub run: fn(&[u8]),
}

/// Every fuzz target, in the order `cargo xtask fuzz` runs them.
pub static TARGETS: [Target; 6] = [
    Target {
        name: "spdy_frames",
        about: "SPDY/3.1 frame decoding (FrameCodec), input in pieces; decoded frames re-encode to themselves",
        run: spdy::frames,
    },
    Target {
        name: "spdy_headers",
        about: "SPDY header-block inflation (zlib bombs against a bounded buffer) and compression round trips",
        run: spdy::header_blocks,
    },
    Target {
        name: "ws_channel",
        about: "WebSocket channel message framing (binary and base64, v5 close signal) and sub-protocol negotiation",
        run: ws::channel_messages,
    },
    Target {
        name: "kubelet_options",
        about: "kubelet query strings: percent-decoding, log options, exec/attach stream options, command",
        run: options::query,
    },
    Target {
        name: "quantity",
        about: "Kubernetes resource quantities: parsing, and printing back to the same value",
        run: quantity::parse,
    },
    Target {
        name: "provider_config",
        about: "provider config files (TOML or JSON, vk-mock's and vk-process's types) through vk_cli::load_provider_config",
        run: config::load,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
