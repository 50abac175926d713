//! The pipeline manifest: which plugins run, in which order, with which configuration.
//!
//! ```toml
//! [[plugin]]
//! builtin = "clean"
//!
//! [[plugin]]
//! builtin = "market-share"
//!
//! [[plugin]]
//! path = "plugins/price-range.wasm"   # relative to this file
//! sha256 = "3b1f…"                    # of the .wasm; a mismatch is refused
//! config = { threshold = "5" }
//! ```
//!
//! A manifest is untrusted input (it may come from a shared bucket): every entry is checked
//! here, before any plugin is read.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::plugin::Config;
use crate::plugin::builtin::{self, Builtin};

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("could not read pipeline manifest {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("pipeline manifest {path} is not valid: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("pipeline manifest {path}, plugin #{index}: {message}")]
    Entry { path: PathBuf, index: usize, message: String },
    #[error("pipeline manifest {path} lists no plugins")]
    Empty { path: PathBuf },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(rename = "plugin", default)]
    plugins: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    /// Name of a plugin built into the host.
    builtin: Option<String>,
    /// Path of a `.wasm` component, relative to the manifest.
    path: Option<String>,
    /// Hex SHA-256 of the component; required with `path`.
    sha256: Option<String>,
    /// Configuration handed to the plugin.
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
}

/// Where a plugin's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Builtin(&'static str),
    File { path: PathBuf, sha256: String },
}

/// One plugin of a pipeline, with its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub source: Source,
    pub config: Config,
}

/// An ordered list of plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    /// `default`, `seed-compat`, or the manifest's path.
    pub name: String,
    pub steps: Vec<Step>,
}

fn builtin_step(plugin: Builtin, config: &[(&str, &str)]) -> Step {
    Step {
        source: Source::Builtin(plugin.name),
        config: config.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

impl Pipeline {
    /// The pipelines built into the host, by name.
    pub const BUILTIN: [&'static str; 2] = ["default", "seed-compat"];

    /// `default`: `clean` then `market-share`, the fixed version of the original transform.
    pub fn default_pipeline() -> Self {
        Self {
            name: "default".into(),
            steps: vec![
                builtin_step(builtin::CLEAN, &[]),
                builtin_step(builtin::MARKET_SHARE, &[]),
            ],
        }
    }

    /// `seed-compat`: the original Python transform's rules exactly, for matching old numbers.
    pub fn seed_compat() -> Self {
        Self {
            name: "seed-compat".into(),
            steps: vec![
                builtin_step(builtin::CLEAN, &[("mode", "seed-compat")]),
                builtin_step(builtin::MARKET_SHARE, &[]),
            ],
        }
    }

    /// A built-in pipeline by name, or the manifest at that path.
    pub fn resolve(name_or_path: &str) -> Result<Self, ManifestError> {
        match name_or_path {
            "default" => Ok(Self::default_pipeline()),
            "seed-compat" => Ok(Self::seed_compat()),
            path => Self::from_file(Path::new(path)),
        }
    }

    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ManifestError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Parses manifest text; `path` is where it lives (plugin paths are relative to it).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text)
            .map_err(|e| ManifestError::Syntax { path: path.to_owned(), message: e.to_string() })?;
        if raw.plugins.is_empty() {
            return Err(ManifestError::Empty { path: path.to_owned() });
        }
        let base = path.parent().unwrap_or(Path::new(""));
        let steps = raw
            .plugins
            .into_iter()
            .enumerate()
            .map(|(i, entry)| {
                entry.resolve(base).map_err(|message| ManifestError::Entry {
                    path: path.to_owned(),
                    index: i + 1,
                    message,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { name: path.display().to_string(), steps })
    }
}

impl RawEntry {
    fn resolve(self, base: &Path) -> Result<Step, String> {
        let source = match (self.builtin, self.path) {
            (Some(name), None) => {
                if self.sha256.is_some() {
                    return Err("`sha256` goes with `path`, not with `builtin`".into());
                }
                let builtin = builtin::find(&name).ok_or_else(|| {
                    let known: Vec<&str> = builtin::ALL.iter().map(|b| b.name).collect();
                    format!("there is no built-in plugin {name:?} (built in: {})", known.join(", "))
                })?;
                Source::Builtin(builtin.name)
            }
            (None, Some(path)) => {
                let relative = Path::new(&path);
                let safe = relative.components().all(|c| matches!(c, Component::Normal(_)));
                if path.is_empty() || !safe {
                    return Err(format!(
                        "path {path:?} must be relative to the manifest and stay below it (no `..`, no leading `/`)"
                    ));
                }
                let sha256 = self.sha256.ok_or_else(|| {
                    format!("`sha256` is required with `path` (run `sha256sum {path}`)")
                })?;
                if sha256.len() != 64 || !sha256.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
                {
                    return Err(format!("sha256 {sha256:?} is not 64 lower-case hex digits"));
                }
                Source::File { path: base.join(relative), sha256 }
            }
            (Some(_), Some(_)) => return Err("give either `builtin` or `path`, not both".into()),
            (None, None) => {
                return Err("give `builtin = \"name\"` or `path = \"file.wasm\"`".into());
            }
        };
        let config = self
            .config
            .into_iter()
            .map(|(key, value)| {
                let value = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(format!(
                            "config `{key}` is a {}; values are strings, numbers or booleans",
                            other.type_str()
                        ));
                    }
                };
                Ok((key, value))
            })
            .collect::<Result<_, String>>()?;
        Ok(Step { source, config })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pipeline, String> {
        Pipeline::parse(text, Path::new("/store/pipeline.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_builtins_and_files() {
        let sha = "a".repeat(64);
        let pipeline = parse(&format!(
            "[[plugin]]\nbuiltin = \"clean\"\nconfig = {{ mode = \"seed-compat\" }}\n\
             [[plugin]]\npath = \"plugins/x.wasm\"\nsha256 = \"{sha}\"\nconfig = {{ n = 5, on = true }}\n"
        ))
        .unwrap();
        assert_eq!(pipeline.steps[0].source, Source::Builtin("clean"));
        assert_eq!(pipeline.steps[0].config, vec![("mode".to_owned(), "seed-compat".to_owned())]);
        assert_eq!(
            pipeline.steps[1].source,
            Source::File { path: "/store/plugins/x.wasm".into(), sha256: sha }
        );
        assert_eq!(
            pipeline.steps[1].config,
            vec![("n".into(), "5".into()), ("on".into(), "true".into())]
        );
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let sha = "a".repeat(64);
        let cases = [
            ("", "lists no plugins"),
            ("[[plugin]]\nbuiltin = \"nope\"", "there is no built-in plugin \"nope\""),
            ("[[plugin]]\npath = \"x.wasm\"", "`sha256` is required"),
            (&format!("[[plugin]]\npath = \"../x.wasm\"\nsha256 = \"{sha}\""), "stay below it"),
            (&format!("[[plugin]]\npath = \"/etc/x.wasm\"\nsha256 = \"{sha}\""), "stay below it"),
            ("[[plugin]]\npath = \"x.wasm\"\nsha256 = \"XYZ\"", "not 64 lower-case hex"),
            ("[[plugin]]\nbuiltin = \"clean\"\nurl = \"http://x\"", "unknown field `url`"),
            ("[[plugin]]\nbuiltin = \"clean\"\nconfig = { a = [1] }", "config `a` is a array"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
