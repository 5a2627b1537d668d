//! A deterministic tar writer: ustar headers, fixed owner/mode/time per entry, entries in
//! the order given (the caller sorts them). Two runs over the same entries write the
//! same bytes, which is what makes image digests reproducible.

use std::io::{self, Write};

/// One entry of a tar stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, relative, `/`-separated; directories end without `/`.
    pub path: String,
    /// Permission bits (`0o755`...).
    pub mode: u32,
    /// Owner user and group id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// What the entry is.
    pub kind: Kind,
}

/// A directory or a regular file with its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File(Vec<u8>),
}

const BLOCK: usize = 512;

/// Writes `entries` (already sorted) as a tar stream with every mtime set to `mtime`.
pub fn write<W: Write>(out: &mut W, entries: &[Entry], mtime: u64) -> io::Result<()> {
    for entry in entries {
        let (size, type_flag, name) = match &entry.kind {
            Kind::Dir => (0, b'5', format!("{}/", entry.path)),
            Kind::File(data) => (data.len() as u64, b'0', entry.path.clone()),
        };
        out.write_all(&header(&name, entry, size, type_flag, mtime)?)?;
        if let Kind::File(data) = &entry.kind {
            out.write_all(data)?;
            let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
            out.write_all(&vec![0; pad])?;
        }
    }
    // The end of the archive: two zero blocks.
    out.write_all(&[0; 2 * BLOCK])
}

fn header(
    name: &str,
    entry: &Entry,
    size: u64,
    type_flag: u8,
    mtime: u64,
) -> io::Result<[u8; BLOCK]> {
    let mut h = [0u8; BLOCK];
    let (prefix, name) = split_name(name)?;
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], u64::from(entry.mode));
    octal(&mut h[108..116], u64::from(entry.uid));
    octal(&mut h[116..124], u64::from(entry.gid));
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = type_flag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], 0);
    octal(&mut h[337..345], 0);
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    // The checksum is computed with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    octal(&mut h[148..155], sum);
    h[155] = b' ';
    Ok(h)
}

/// Splits a path into ustar's prefix (155 bytes) and name (100 bytes) fields.
fn split_name(path: &str) -> io::Result<(&str, &str)> {
    if path.len() <= 100 {
        return Ok(("", path));
    }
    let too_long = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tar path too long: {path}"),
        )
    };
    let cut = path[..path.len().min(156)]
        .rfind('/')
        .ok_or_else(too_long)?;
    let (prefix, name) = (&path[..cut], &path[cut + 1..]);
    if prefix.len() > 155 || name.len() > 100 || name.is_empty() {
        return Err(too_long());
    }
    Ok((prefix, name))
}

/// Writes `value` as zero-padded octal digits followed by a NUL, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    let bytes = text.as_bytes();
    let start = bytes.len().saturating_sub(digits);
    field[..digits].copy_from_slice(&bytes[start..]);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        vec![
            Entry {
                path: "etc".into(),
                mode: 0o755,
                uid: 0,
                gid: 0,
                kind: Kind::Dir,
            },
            Entry {
                path: "etc/passwd".into(),
                mode: 0o644,
                uid: 0,
                gid: 0,
                kind: Kind::File(b"root:x:0:0::/:/sbin/nologin\n".to_vec()),
            },
        ]
    }

    #[test]
    fn same_entries_give_same_bytes_and_block_aligned_output() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write(&mut a, &sample(), 0).expect("write a");
        write(&mut b, &sample(), 0).expect("write b");
        assert_eq!(a, b);
        // dir header + file header + one data block + two end blocks
        assert_eq!(a.len(), 5 * BLOCK);
        assert_eq!(&a[..4], b"etc/");
        assert_eq!(&a[257..263], b"ustar\0");
    }

    #[test]
    fn checksum_is_the_sum_of_the_header_with_spaces_in_its_field() {
        let mut out = Vec::new();
        write(&mut out, &sample()[..1], 1_700_000_000).expect("write");
        let header = &out[..BLOCK];
        let stored = std::str::from_utf8(&header[148..154]).expect("ascii");
        let mut blanked = header.to_vec();
        blanked[148..156].copy_from_slice(b"        ");
        let sum: u64 = blanked.iter().map(|b| u64::from(*b)).sum();
        assert_eq!(u64::from_str_radix(stored, 8).expect("octal"), sum);
        assert_eq!(
            &header[136..147],
            format!("{:011o}", 1_700_000_000u64).as_bytes()
        );
    }

    #[test]
    fn long_paths_use_the_prefix_field() {
        let long = format!("{}/{}", "d".repeat(120), "file");
        assert_eq!(split_name(&long).expect("fits"), (&long[..120], "file"));
        assert!(split_name(&"x".repeat(300)).is_err());
    }
}
