//! The bytes of a raw snapshot on their way to [`crate::ingest`]: a buffer fetched from a store,
//! or a local file mapped into memory.
//!
//! Reading a 100 MB file copies it into freshly zeroed pages, which took a third of a large
//! transform. A read-only mapping reads it straight from the page cache instead.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Deref;
use std::path::Path;

/// Files smaller than this are read; mapping pays off only for large ones.
const MAP_FROM: u64 = 1 << 20;

/// A raw snapshot's bytes.
#[derive(Debug)]
pub enum RawBytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl RawBytes {
    /// The content of the file at `path`.
    pub fn read(path: &Path) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        if len < MAP_FROM {
            let mut bytes = Vec::with_capacity(len as usize);
            file.read_to_end(&mut bytes)?;
            return Ok(RawBytes::Owned(bytes));
        }
        Self::map(&file)
    }

    /// A private, read-only mapping.
    #[allow(unsafe_code)]
    fn map(file: &File) -> io::Result<Self> {
        // SAFETY: the mapping is read-only and private, so nothing reaches the file through it.
        // What mapping cannot guard against is another program truncating or rewriting the file
        // in place while it is mapped. crypto-etl never does: raw snapshots are kept as fetched,
        // and its stores write every file under a temporary name and rename it into place, which
        // leaves an existing mapping on the old content.
        let map = unsafe { memmap2::MmapOptions::new().map_copy_read_only(file)? };
        Ok(RawBytes::Mapped(map))
    }
}

impl From<Vec<u8>> for RawBytes {
    fn from(bytes: Vec<u8>) -> Self {
        RawBytes::Owned(bytes)
    }
}

impl Deref for RawBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            RawBytes::Owned(bytes) => bytes,
            RawBytes::Mapped(map) => map,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_files_are_mapped_and_small_ones_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.json");
        let content = vec![b' '; (MAP_FROM + 1) as usize];
        std::fs::write(&path, &content).unwrap();
        let raw = RawBytes::read(&path).unwrap();
        assert!(matches!(raw, RawBytes::Mapped(_)));
        assert_eq!(&*raw, &content[..]);

        std::fs::write(&path, b"[]").unwrap();
        let raw = RawBytes::read(&path).unwrap();
        assert!(matches!(raw, RawBytes::Owned(_)));
        assert_eq!(&*raw, b"[]");
    }
}
