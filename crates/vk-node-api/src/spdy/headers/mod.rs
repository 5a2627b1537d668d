//! Name/value header blocks and their compression.
//!
//! SYN_STREAM, SYN_REPLY and HEADERS frames carry a *name/value header block*: a
//! 32-bit big-endian number of pairs, then for each pair a 32-bit length and the
//! name, a 32-bit length and the value. Names are lowercase; a name appears once, and
//! several values for it are joined with a NUL byte (`\0`).
//!
//! The block is compressed with zlib. Each direction of a session is one endless zlib
//! stream, primed with the SPDY/3 [`DICTIONARY`] and flushed with `Z_SYNC_FLUSH` at the
//! end of every block, so a block can reference text of the blocks sent before it
//! (peers compress this way; what we send is stored, see below). A session therefore
//! owns exactly one [`HeaderCompressor`] (for what it sends) and one
//! [`HeaderDecompressor`] (for what it receives), and must feed them every header
//! block in order, including those of frames it then ignores.
//!
//! # What is sent, and the preset dictionary without `inflateSetDictionary`
//!
//! * sending: [`HeaderCompressor`] writes a valid zlib stream (its header names the
//!   dictionary) whose deflate data are *stored* blocks, the header block's bytes
//!   uncompressed. Any inflater reads them; the compressor holds no deflate state
//!   (about 240 KB per session otherwise), which is what idle streaming sessions
//!   cost most of. Its docs give the reasoning.
//! * receiving: the crate builds `flate2` with its pure-Rust backend, which has no
//!   `set_dictionary`. The raw inflater is first fed a *stored* deflate block holding
//!   the dictionary, whose output is thrown away; this puts the dictionary in the
//!   window, which is what zlib's `inflateSetDictionary` does. The peer's zlib header
//!   is parsed and checked by hand and the rest of its stream is inflated as is.
//!
//! # Layout
//!
//! * this file: [`Headers`], the pairs of a block;
//! * `block.rs`: the uncompressed name/value block ([`encode_header_block`],
//!   [`decode_header_block`]);
//! * `zlib.rs`: the zlib streams ([`HeaderCompressor`], [`HeaderDecompressor`]);
//! * `dictionary.rs`: the SPDY/3 [`DICTIONARY`] and its [`DICTIONARY_ID`].

mod block;
mod dictionary;
// Visible to the module's tests, which check the zlib header byte.
pub(super) mod zlib;

pub use block::{decode_header_block, encode_header_block};
pub use dictionary::{DICTIONARY, DICTIONARY_ID};
pub use zlib::{DEFAULT_MAX_HEADER_BLOCK_LEN, HeaderCompressor, HeaderDecompressor};

/// The header pairs of a stream, in the order they were received.
///
/// Names are stored lowercase. A header with several values (NUL-separated on the
/// wire) appears as several pairs with the same name. [`Headers::get`] compares names
/// case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pair; the name is lowercased.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let mut name = name.into();
        name.make_ascii_lowercase();
        self.entries.push((name, value.into()));
    }

    /// The first value of header `name` (any case), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of header `name` (any case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of pairs (a header with two values counts twice).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The pairs as a slice.
    pub fn as_slice(&self) -> &[(String, String)] {
        &self.entries
    }

    /// The pairs as a vector.
    pub fn into_vec(self) -> Vec<(String, String)> {
        self.entries
    }
}

impl From<Vec<(String, String)>> for Headers {
    /// Takes the pairs as they are, lowercasing the names.
    fn from(mut entries: Vec<(String, String)>) -> Self {
        for (name, _) in &mut entries {
            name.make_ascii_lowercase();
        }
        Self { entries }
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (name, value) in iter {
            headers.append(name, value);
        }
        headers
    }
}

impl IntoIterator for Headers {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}
