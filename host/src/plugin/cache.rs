//! Compiled components, cached in memory and on disk so no process compiles a plugin twice.
//!
//! Disk entries are keyed by the plugin's SHA-256 and by the engine's compatibility hash (the
//! wasmtime version and every setting that affects code generation), so an upgraded host never
//! loads code compiled by an older one.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ComponentCache {
    memory: Mutex<HashMap<String, Component>>,
    dir: Option<PathBuf>,
    engine_key: String,
}

impl ComponentCache {
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        Self { memory: Mutex::new(HashMap::new()), dir, engine_key }
    }

    fn path(&self, sha256: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{sha256}-{}.cwasm", self.engine_key)))
    }

    pub fn get_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<Component> {
        if let Some(component) = self.lock().get(sha256) {
            return Ok(component.clone());
        }
        let cached = self.path(sha256).and_then(|path| load(engine, &path));
        let component = match cached {
            Some(component) => component,
            None => {
                let component = Component::new(engine, bytes)?;
                if let Some(path) = self.path(sha256)
                    && let Err(e) = store(&component, &path)
                {
                    tracing::warn!(path = %path.display(), "could not cache the compiled plugin: {e}");
                }
                component
            }
        };
        self.lock().insert(sha256.to_owned(), component.clone());
        Ok(component)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Component>> {
        // A poisoned cache only means another thread panicked mid-insert; the map is still valid.
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[allow(unsafe_code)]
fn load(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: the file was written by `store` below from a component this same engine
    // configuration compiled (the file name carries the engine's compatibility hash), and it is
    // replaced only by atomic renames, so it is never seen half-written. The cache directory is
    // the operator's own, like the binary itself.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(path = %path.display(), "ignoring unusable cached plugin: {e:#}");
            None
        }
    }
}

fn store(component: &Component, path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().ok_or_else(|| anyhow::anyhow!("no parent directory"))?;
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(&bytes)?;
    file.persist(path)?;
    Ok(())
}
