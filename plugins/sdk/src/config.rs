//! Per-instance configuration from the pipeline manifest.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::str::FromStr;

use crate::PluginError;

/// Key/value configuration given to one plugin instance in the pipeline manifest.
///
/// Every key a plugin understands must be read during [`crate::Plugin::plan`]: keys that were
/// never read are refused there as unknown, so a typo in a manifest fails before any data moves.
#[derive(Debug)]
pub struct Config {
    entries: Vec<(String, String)>,
    read: RefCell<BTreeSet<String>>,
}

impl Config {
    #[doc(hidden)]
    pub fn new(entries: Vec<(String, String)>) -> Self {
        Self { entries, read: RefCell::new(BTreeSet::new()) }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.read.borrow_mut().insert(key.to_owned());
        self.entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value of `key` parsed as `T`, or `default` when the key is not set.
    pub fn parse_or<T: FromStr>(&self, key: &str, default: T) -> Result<T, PluginError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e| {
                PluginError::InvalidConfig(format!("`{key}` = {raw:?} is not valid: {e}"))
            }),
        }
    }

    /// The value of `key`, which must be one of `choices`; the first choice when unset.
    pub fn choice<'c>(&self, key: &str, choices: &[&'c str]) -> Result<&'c str, PluginError> {
        match self.get(key) {
            None => Ok(choices[0]),
            Some(raw) => choices.iter().find(|c| **c == raw).copied().ok_or_else(|| {
                PluginError::InvalidConfig(format!(
                    "`{key}` = {raw:?} is not one of: {}",
                    choices.join(", ")
                ))
            }),
        }
    }

    /// Refuses keys that the plugin never asked for.
    #[doc(hidden)]
    pub fn check_all_used(&self) -> Result<(), PluginError> {
        let read = self.read.borrow();
        let unknown: Vec<&str> =
            self.entries.iter().map(|(k, _)| k.as_str()).filter(|k| !read.contains(*k)).collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let known: Vec<&str> = read.iter().map(String::as_str).collect();
        Err(PluginError::InvalidConfig(format!(
            "unknown key(s) {}; this plugin understands: {}",
            unknown.join(", "),
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        )))
    }
}
