//! A folder as a store: `<root>/<key>`, written through a temporary file and a rename.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Key, StoreError};

/// Objects as files below a root folder.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

fn io_error(action: &'static str, path: &Path, error: std::io::Error) -> StoreError {
    if error.kind() == std::io::ErrorKind::NotFound && action == "read" {
        return StoreError::NotFound { location: path.display().to_string() };
    }
    StoreError::Io {
        action,
        location: path.display().to_string(),
        message: error.to_string(),
        transient: false,
    }
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds `key`.
    pub fn path(&self, key: &Key) -> PathBuf {
        self.root.join(key.as_str())
    }

    pub async fn put(&self, key: &Key, bytes: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path(key);
        tokio::task::spawn_blocking(move || {
            write_atomically(&path, &bytes).map_err(|e| io_error("write", &path, e))
        })
        .await
        .map_err(|e| StoreError::Io {
            action: "write",
            location: self.path(key).display().to_string(),
            message: e.to_string(),
            transient: false,
        })?
    }

    pub async fn get(&self, key: &Key) -> Result<Vec<u8>, StoreError> {
        let path = self.path(key);
        tokio::fs::read(&path).await.map_err(|e| io_error("read", &path, e))
    }

    pub async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        let root = self.root.clone();
        let start = self.path(prefix);
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            let mut pending = vec![start];
            while let Some(dir) = pending.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_error("list", &dir, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| io_error("list", &dir, e))?;
                    let path = entry.path();
                    // Temporary files of writes in progress start with a dot.
                    if entry.file_name().to_string_lossy().starts_with('.') {
                        continue;
                    }
                    if path.is_dir() {
                        pending.push(path);
                    } else if let Some(key) = path
                        .strip_prefix(&root)
                        .ok()
                        .and_then(|p| p.to_str())
                        .and_then(|p| Key::new(p).ok())
                    {
                        keys.push(key);
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
        .map_err(|e| StoreError::Io {
            action: "list",
            location: self.path(prefix).display().to_string(),
            message: e.to_string(),
            transient: false,
        })?
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = crate::output::temp_file_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().to_owned());
        let key = Key::new("raw/dt=2026-11-27/a.json").unwrap();
        store.put(&key, b"[1]".to_vec()).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), b"[1]");
        assert_eq!(store.list(&Key::new("raw").unwrap()).await.unwrap(), vec![key]);
        let missing = store.get(&Key::new("nope.json").unwrap()).await.unwrap_err();
        assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");
    }
}
