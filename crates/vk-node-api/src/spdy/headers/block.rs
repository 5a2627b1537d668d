//! The uncompressed name/value header block ([`encode_header_block`],
//! [`decode_header_block`]); its format is described in the docs of
//! [`headers`](super).

use super::super::SpdyError;
use super::Headers;

/// Serializes `headers` as an uncompressed SPDY/3 name/value block, appending to `out`.
///
/// Pairs with the same name are merged into one entry with NUL-separated values, in
/// the order of the name's first appearance. Fails on an empty name, a value
/// containing NUL (it would read back as two values), or lengths beyond 32 bits.
pub fn encode_header_block(headers: &Headers, out: &mut Vec<u8>) -> Result<(), SpdyError> {
    let mut merged: Vec<(&str, Vec<&str>)> = Vec::new();
    for (name, value) in headers.iter() {
        if name.is_empty() {
            return Err(encode_error("empty header name"));
        }
        if value.contains('\0') {
            return Err(encode_error(format!(
                "value of header {name:?} contains NUL"
            )));
        }
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => merged.push((name, vec![value])),
        }
    }
    put_len(out, merged.len())?;
    for (name, values) in merged {
        put_len(out, name.len())?;
        out.extend_from_slice(name.as_bytes());
        let value_len = values.iter().map(|v| v.len()).sum::<usize>() + values.len() - 1;
        put_len(out, value_len)?;
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                out.push(0);
            }
            out.extend_from_slice(value.as_bytes());
        }
    }
    Ok(())
}

/// Parses an uncompressed SPDY/3 name/value block.
///
/// Lenient where that is harmless: uppercase names are lowercased and a repeated
/// name adds values. Strict where it protects the parser: every length must fit in
/// the block, names must be non-empty, names and values must be UTF-8, and no bytes
/// may follow the last pair.
pub fn decode_header_block(block: &[u8]) -> Result<Headers, SpdyError> {
    let mut rest = block;
    let count = take_u32(&mut rest)?;
    // Each pair takes at least 8 bytes, so a count the block cannot hold is rejected
    // before it drives an allocation.
    if u64::from(count) * 8 > rest.len() as u64 {
        return Err(decode_error(format!(
            "{count} pairs announced in {} bytes",
            rest.len()
        )));
    }
    let mut headers = Headers {
        entries: Vec::with_capacity((count as usize).min(32)),
    };
    for _ in 0..count {
        let name = take_bytes(&mut rest)?;
        let value = take_bytes(&mut rest)?;
        if name.is_empty() {
            return Err(decode_error("empty header name"));
        }
        let mut name = std::str::from_utf8(name)
            .map_err(|_| decode_error("header name is not UTF-8"))?
            .to_owned();
        name.make_ascii_lowercase();
        let value = std::str::from_utf8(value)
            .map_err(|_| decode_error(format!("value of header {name:?} is not UTF-8")))?;
        for part in value.split('\0') {
            headers.entries.push((name.clone(), part.to_owned()));
        }
    }
    if !rest.is_empty() {
        return Err(decode_error(format!(
            "{} bytes after the last header",
            rest.len()
        )));
    }
    Ok(headers)
}

fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), SpdyError> {
    let len = u32::try_from(len).map_err(|_| encode_error("header longer than 4 GiB"))?;
    out.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, SpdyError> {
    let Some((word, tail)) = rest.split_first_chunk::<4>() else {
        return Err(decode_error("truncated header block"));
    };
    *rest = tail;
    Ok(u32::from_be_bytes(*word))
}

fn take_bytes<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], SpdyError> {
    let len = take_u32(rest)? as usize;
    if len > rest.len() {
        return Err(decode_error(format!(
            "header field of {len} bytes in the {} bytes left",
            rest.len()
        )));
    }
    let (field, tail) = rest.split_at(len);
    *rest = tail;
    Ok(field)
}

fn encode_error(reason: impl Into<String>) -> SpdyError {
    SpdyError::EncodeHeaders {
        reason: reason.into(),
    }
}

fn decode_error(reason: impl Into<String>) -> SpdyError {
    SpdyError::DecodeHeaders {
        reason: reason.into(),
    }
}
