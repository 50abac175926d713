//! Pipelines: which plugins run in which order ([`manifest`]), and running them ([`chain`]).

pub mod chain;
pub mod manifest;
pub mod published;

use sha2::{Digest, Sha256};

pub use chain::{Chain, ChainRun, RejectedRow, Stage, StageReport};
pub use manifest::{ManifestError, Pipeline, Source, Step};

use crate::plugin::builtin;
use crate::plugin::{LoadError, Runtime, TransformPlugin};

/// Why a pipeline's plugins could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("could not read plugin {path}: {source}")]
    ReadPlugin { path: std::path::PathBuf, source: std::io::Error },
    #[error(
        "plugin {path} has sha256 {actual}, but the manifest expects {expected}; refusing to run bytes nobody vouched for"
    )]
    HashMismatch { path: std::path::PathBuf, expected: String, actual: String },
    #[error(transparent)]
    Load(#[from] LoadError),
}

impl Pipeline {
    /// Reads, verifies and loads every plugin of the pipeline, in order.
    pub fn load(&self, runtime: &Runtime) -> Result<Vec<Stage>, PipelineError> {
        self.steps
            .iter()
            .map(|step| {
                let plugin: Box<dyn TransformPlugin> = match &step.source {
                    Source::Builtin(name) => {
                        let builtin = builtin::find(name).ok_or_else(|| ManifestError::Syntax {
                            path: self.name.clone().into(),
                            message: format!("unknown built-in {name}"),
                        })?;
                        Box::new(runtime.load(builtin.wasm, &format!("built-in plugin `{name}`"))?)
                    }
                    Source::File { path, sha256 } => {
                        let bytes = std::fs::read(path).map_err(|source| {
                            PipelineError::ReadPlugin { path: path.clone(), source }
                        })?;
                        let actual = hex::encode(Sha256::digest(&bytes));
                        if &actual != sha256 {
                            return Err(PipelineError::HashMismatch {
                                path: path.clone(),
                                expected: sha256.clone(),
                                actual,
                            });
                        }
                        Box::new(runtime.load(&bytes, &path.display().to_string())?)
                    }
                };
                Ok(Stage { plugin, config: step.config.clone() })
            })
            .collect()
    }
}
