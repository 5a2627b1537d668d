//! # vk-trace: tracing and OpenTelemetry setup for Virtual Kubelet binaries
//!
//! One place that configures `tracing` (human or JSON logs, runtime-adjustable filters,
//! optional OTLP export) and documents the span/field conventions shared by the crates.
//!
//! Not implemented yet: the observability issue builds it; until then `vk-cli` sets up
//! plain `tracing-subscriber` logging.
