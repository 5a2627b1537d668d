//! Unit tests of the SPDY module, one file per layer: `frame.rs`, `headers.rs`, and
//! `session/` (the session driven by a test client, one file per topic).

#![allow(clippy::unwrap_used)] // Tests may panic on unexpected errors.

mod frame;
mod headers;
mod session;
