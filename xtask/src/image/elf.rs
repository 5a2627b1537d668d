//! Just enough ELF to tell a static binary from a dynamic one: a program header of type
//! `PT_INTERP` names the dynamic loader, which a minimal image does not have.

use anyhow::bail;

const PT_INTERP: u32 = 3;

/// Whether the ELF64 little-endian executable `bytes` asks for a dynamic loader.
pub fn interpreter(bytes: &[u8]) -> anyhow::Result<bool> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        bail!("not an ELF file");
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        bail!("not a 64-bit little-endian ELF file");
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let ph_offset = usize::try_from(u64::from_le_bytes(
        bytes[32..40].try_into().unwrap_or_default(),
    ))?;
    let (ph_size, ph_count) = (usize::from(u16_at(54)), usize::from(u16_at(56)));
    for i in 0..ph_count {
        let at = ph_offset + i * ph_size;
        let Some(header) = bytes.get(at..at + 4) else {
            bail!("truncated program headers");
        };
        if u32::from_le_bytes(header.try_into().unwrap_or_default()) == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_binary_itself_is_dynamic_and_garbage_is_refused() {
        // Test binaries are built for the host's glibc target: dynamically linked.
        let me = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
        assert!(interpreter(&me).expect("parse"));
        assert!(interpreter(b"#!/bin/sh\n").is_err());
    }
}
