//! The bytes of a raw snapshot on their way to [`crate::ingest`]: a buffer fetched from a store,
//! or a local file mapped into memory.
//!
//! Reading a 100 MB file copies it into freshly zeroed pages, which took a third of a large
//! transform. A read-only mapping reads it straight from the page cache instead.

use std::fs::File;
use std::io::{self, Read};
use std::ops::{Deref, Range};
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

    /// Lets go of the pages of `range` that a mapping has read in, so that a large snapshot's
    /// text does not stay resident beside the columns parsed from it. They read the same if
    /// touched again (from the page cache, or the file). A buffer keeps its bytes.
    #[allow(unsafe_code)]
    pub fn release(&self, range: Range<usize>) {
        #[cfg(unix)]
        if let RawBytes::Mapped(map) = self
            && range.end <= map.len()
        {
            // SAFETY: `MADV_DONTNEED` on a private mapping drops what this process wrote to it;
            // nothing ever writes to this one (it is read-only), so its pages, the partial ones
            // at either end included, read the file's content again when touched, and no
            // program changes that in place while it is mapped (see `map`). The advice only
            // trades memory for page faults: if it is refused, the pages stay.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    range.start,
                    range.len(),
                )
            };
        }
        #[cfg(not(unix))]
        let _ = range;
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

    #[cfg(target_os = "linux")]
    #[test]
    fn released_pages_leave_memory_and_still_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.json");
        let content: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let raw = RawBytes::read(&path).unwrap();
        assert_eq!(&*raw, &content[..]);
        let before = resident_kib(&raw);

        raw.release(1 << 20..7 << 20);
        let after = resident_kib(&raw);
        assert!(before >= 7 << 10, "{before} KiB resident after reading 8 MiB");
        assert!(after <= before - (5 << 10), "{before} KiB resident before, {after} after");
        assert_eq!(&*raw, &content[..]);
    }

    /// The resident size of the mapping that starts at `bytes`, from /proc/self/smaps.
    #[cfg(target_os = "linux")]
    fn resident_kib(bytes: &[u8]) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{:x}-", bytes.as_ptr() as usize);
        let mapping = smaps.lines().skip_while(|line| !line.starts_with(&start));
        let rss = mapping.skip(1).find_map(|line| line.strip_prefix("Rss:")).unwrap();
        rss.trim().trim_end_matches("kB").trim().parse().unwrap()
    }
}
