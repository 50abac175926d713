//! The pipeline that lives in a store: `plugins/pipeline.toml` beside the plugins it names.
//!
//! This is how an analyst's plugin reaches the Lambda without a redeploy. `plugin publish`
//! checks a component in the sandbox, runs the whole new chain over a reference snapshot, uploads
//! the component under a content-addressed key and only then replaces the manifest, in one put.
//! Every transform reads the manifest again (a small object), so the next execution runs the
//! new chain; a manifest or plugin that fails its checks stops that transform with an error and
//! the previous objects stay as they were.
//!
//! Plugins are copied into a local folder named by their sha256 (`/tmp` in a Lambda), verified
//! on every use, so a warm container downloads each plugin once.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{ManifestError, Pipeline, PipelineError, Source, Step};
use crate::plugin::{Runtime, SnapshotContext, TransformPlugin};
use crate::snapshot::FetchTime;
use crate::store::{Key, Store, StoreError};

/// The manifest's key in a store.
pub const MANIFEST_KEY: &str = "plugins/pipeline.toml";
/// Where published plugins go.
pub const PLUGINS_PREFIX: &str = "plugins";

/// A small, hand-written snapshot with every documented field: what a new chain is tried on
/// before it is published.
pub const REFERENCE_SNAPSHOT: &[u8] = include_bytes!("../../../samples/coins-markets.json");

/// Why the stored pipeline cannot be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("the new chain fails on the reference snapshot, so nothing was published: {0}")]
    Rejected(String),
    #[error("plugin `{0}` is not in the stored pipeline (its plugins: {1})")]
    UnknownPlugin(String, String),
    #[error("could not keep plugins in {dir}: {source}")]
    Cache { dir: PathBuf, source: std::io::Error },
}

impl PublishError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, PublishError::Store(e) if e.is_transient())
    }
}

/// The stored pipeline, with its plugins copied to `cache` and verified; `None` when the store
/// has no manifest (then the built-in default applies).
pub async fn fetch(store: &Store, cache: &Path) -> Result<Option<Pipeline>, PublishError> {
    match manifest(store).await? {
        Some(bytes) => materialize(store, cache, &bytes).await.map(Some),
        None => Ok(None),
    }
}

/// The pipeline of the manifest `bytes` read from `store`, with its plugins copied into `cache`
/// under the names they have in the store (`plugins/<name>` becomes `<cache>/<name>`). A copy
/// whose sha256 matches the manifest is used as it is; the hash is checked again on load.
pub async fn materialize(
    store: &Store,
    cache: &Path,
    bytes: &[u8],
) -> Result<Pipeline, PublishError> {
    let manifest_key = Key::new(MANIFEST_KEY).expect("a valid key");
    let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::Syntax {
        path: store.location(&manifest_key).into(),
        message: "not UTF-8 text".into(),
    })?;
    // Parsed as if it lived in `cache`, so plugin paths land there, checked to stay below it.
    let mut pipeline = Pipeline::parse(text, &cache.join("pipeline.toml"))?;
    pipeline.name = store.location(&manifest_key);
    std::fs::create_dir_all(cache)
        .map_err(|source| PublishError::Cache { dir: cache.to_owned(), source })?;
    for step in &pipeline.steps {
        let Source::File { path: local, sha256 } = &step.source else { continue };
        let cached = std::fs::read(local).is_ok_and(|b| hex::encode(Sha256::digest(&b)) == *sha256);
        if !cached {
            let key = Key::new(&format!("{PLUGINS_PREFIX}/{}", stored_name(local, cache)))
                .map_err(StoreError::from)?;
            let bytes = store.get(&key).await?;
            let temp = local.with_extension("partial");
            std::fs::create_dir_all(local.parent().unwrap_or(cache))
                .and_then(|()| std::fs::write(&temp, &bytes))
                .and_then(|()| std::fs::rename(&temp, local))
                .map_err(|source| PublishError::Cache { dir: cache.to_owned(), source })?;
        }
    }
    Ok(pipeline)
}

/// The manifest's bytes, or `None` when the store has none. Looked up by listing its folder
/// first: S3 answers a missing object with 403, not 404, to a reader that may not list the
/// whole bucket, and a function's role should not need to.
pub async fn manifest(store: &Store) -> Result<Option<Vec<u8>>, PublishError> {
    let manifest_key = Key::new(MANIFEST_KEY).expect("a valid key");
    let folder = Key::new(PLUGINS_PREFIX).expect("a valid key");
    if !store.list(&folder).await?.contains(&manifest_key) {
        return Ok(None);
    }
    match store.get(&manifest_key).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Where to put a new plugin in the chain.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// After the plugin of this name; at the end when `None`.
    pub after: Option<String>,
}

/// What a publish did.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub object: String,
    pub manifest: String,
    /// The chain now stored, by plugin name.
    pub chain: Vec<String>,
    /// The columns the chain writes on the reference snapshot.
    pub columns: Vec<String>,
}

/// Checks `wasm` as the next plugin of the stored chain and publishes it.
pub async fn publish(
    store: &Store,
    runtime: &Runtime,
    cache: &Path,
    wasm: &[u8],
    origin: &str,
    config: Vec<(String, String)>,
    placement: &Placement,
) -> Result<Published, PublishError> {
    let current = fetch(store, cache).await?.unwrap_or_else(Pipeline::default_pipeline);
    // Plugins run synchronously in the sandbox: off the async threads.
    let (runtime_, cache_, wasm_, origin_, placement_) =
        (runtime.clone(), cache.to_owned(), wasm.to_vec(), origin.to_owned(), placement.clone());
    let candidate = tokio::task::spawn_blocking(move || {
        candidate(&runtime_, &cache_, &wasm_, &origin_, config, &placement_, &current)
    })
    .await
    .map_err(|e| PublishError::Rejected(format!("the check stopped unexpectedly: {e}")))??;

    let object =
        Key::new(&format!("{PLUGINS_PREFIX}/{}", candidate.file_name)).map_err(StoreError::from)?;
    store.put(&object, wasm.to_vec(), "application/wasm").await?;
    let manifest = render(&candidate.pipeline, cache, &candidate.names);
    let manifest_key = Key::new(MANIFEST_KEY).expect("a valid key");
    store.put(&manifest_key, manifest.into_bytes(), "application/toml").await?;
    Ok(Published {
        name: candidate.info.name,
        version: candidate.info.version,
        sha256: candidate.sha256,
        object: store.location(&object),
        manifest: store.location(&manifest_key),
        chain: candidate.names,
        columns: candidate.columns,
    })
}

/// A checked new chain, not yet stored.
struct Candidate {
    info: crate::plugin::PluginInfo,
    sha256: String,
    file_name: String,
    pipeline: Pipeline,
    names: Vec<String>,
    columns: Vec<String>,
}

/// Loads the plugin, places it in `current` and runs the new chain over the reference snapshot.
fn candidate(
    runtime: &Runtime,
    cache: &Path,
    wasm: &[u8],
    origin: &str,
    config: Vec<(String, String)>,
    placement: &Placement,
    current: &Pipeline,
) -> Result<Candidate, PublishError> {
    let plugin = runtime.load(wasm, origin).map_err(PipelineError::from)?;
    let info = plugin.info().clone();
    let sha256 = plugin.sha256().to_owned();

    // The same plugin name replaces its earlier version in place. Objects are named by content,
    // like the local copies, so a published object never changes.
    let file_name = format!("{sha256}.wasm");
    let local = cache.join(&file_name);
    std::fs::create_dir_all(cache)
        .and_then(|()| std::fs::write(&local, wasm))
        .map_err(|source| PublishError::Cache { dir: cache.to_owned(), source })?;
    let step = Step { source: Source::File { path: local, sha256: sha256.clone() }, config };
    let mut names = step_names(runtime, current)?;
    let mut steps = current.steps.clone();
    if let Some(at) = names.iter().position(|n| *n == info.name) {
        steps.remove(at);
        names.remove(at);
    }
    let at = match &placement.after {
        None => steps.len(),
        Some(after) => names
            .iter()
            .position(|n| n == after)
            .map(|i| i + 1)
            .ok_or_else(|| PublishError::UnknownPlugin(after.clone(), names.join(", ")))?,
    };
    steps.insert(at, step);
    names.insert(at, info.name.clone());
    let pipeline = Pipeline { name: "candidate".into(), steps };
    // A dry run of the whole chain, with production's limits and checks.
    let columns = try_chain(runtime, &pipeline)?;
    Ok(Candidate { info, sha256, file_name, pipeline, names, columns })
}

/// The plugin names of a pipeline, in order.
pub fn step_names(runtime: &Runtime, pipeline: &Pipeline) -> Result<Vec<String>, PublishError> {
    Ok(pipeline.load(runtime)?.iter().map(|stage| stage.plugin.info().name.clone()).collect())
}

/// Runs `pipeline` over the reference snapshot; returns the output's column names.
fn try_chain(runtime: &Runtime, pipeline: &Pipeline) -> Result<Vec<String>, PublishError> {
    let fetch_time = FetchTime::parse("2026-01-01T00-00-00Z").expect("a valid fetch time");
    let context = SnapshotContext {
        fetch_time: fetch_time.micros(),
        currency: "usd".into(),
        market_total_cap: None,
        market_total_volume: None,
    };
    let transformed =
        crate::transform::transform(runtime, REFERENCE_SNAPSHOT.to_vec(), pipeline, &context)
            .map_err(|e| PublishError::Rejected(e.to_string()))?;
    Ok(transformed.columns.iter().map(|c| c.name.clone()).collect())
}

/// The manifest text for `pipeline`, whose file plugins are in `cache` under the names they are
/// stored under; `names` are the plugins' names, for the reader.
fn render(pipeline: &Pipeline, cache: &Path, names: &[String]) -> String {
    let mut text = String::from(
        "# The pipeline the transform runs, in order. Written by `crypto-etl plugin publish`.\n",
    );
    for (step, name) in pipeline.steps.iter().zip(names) {
        text.push_str(&format!("\n# {name}\n[[plugin]]\n"));
        match &step.source {
            Source::Builtin(name) => text.push_str(&format!("builtin = {}\n", toml_string(name))),
            Source::File { path, sha256 } => {
                text.push_str(&format!("path = {}\n", toml_string(&stored_name(path, cache))));
                text.push_str(&format!("sha256 = {}\n", toml_string(sha256)));
            }
        }
        if !step.config.is_empty() {
            let pairs: Vec<String> = step
                .config
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_string(k), toml_string(v)))
                .collect();
            text.push_str(&format!("config = {{ {} }}\n", pairs.join(", ")));
        }
    }
    text
}

/// The object name a cached plugin was published under.
fn stored_name(path: &Path, cache: &Path) -> String {
    path.strip_prefix(cache).unwrap_or(path).to_string_lossy().into_owned()
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}
