//! Layered configuration: serde defaults → optional file → environment with a
//! service prefix and `__` separators (`VAULT__REDIS__URL` → `redis.url`).
//! Settings are types: every struct denies unknown fields and every choice is
//! an enum, so a typo in a key or a value stops start-up with an error naming
//! it. Lists are sequences in a file and comma-separated in the environment.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] config::ConfigError);

/// Where a service's settings come from, after the serde defaults.
#[derive(Debug, Clone, Default)]
pub struct Layers<'a> {
    /// An optional TOML file.
    pub file: Option<&'a Path>,
    /// `None`: the process environment. `Some`: these variables instead, so a
    /// test loads through the real loader without touching the process's.
    pub env: Option<HashMap<String, String>>,
}

impl<'a> Layers<'a> {
    /// The file, then the process environment.
    pub fn process(file: Option<&'a Path>) -> Self {
        Self { file, env: None }
    }

    /// A variable of the environment these layers read.
    pub fn var(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(vars) => vars.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
    }
}

/// Loads `T` for the service whose environment prefix is `prefix` (e.g.
/// `VAULT`). `list_keys` are the dotted keys (`tls.allowed_clients`) whose
/// environment value is a comma-separated list. Errors name the offending key
/// or value.
pub fn load<T: DeserializeOwned>(prefix: &str, list_keys: &[&str], layers: &Layers<'_>) -> Result<T, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(file) = layers.file {
        builder = builder.add_source(config::File::from(file).required(true));
    }
    let mut env = config::Environment::with_prefix(prefix)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(layers.env.clone());
    // With a separator and no list keys, `config` would split every value.
    if !list_keys.is_empty() {
        env = env.list_separator(",");
        for key in list_keys {
            env = env.with_list_parse_key(key);
        }
    }
    Ok(builder.add_source(env).build()?.try_deserialize()?)
}

/// A list value without blanks and surrounding spaces (`"a, b,"` → `a`, `b`).
pub fn clean_list<'a>(items: &'a [String]) -> impl Iterator<Item = &'a str> + 'a {
    items.iter().map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// The merchant directory both services load.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MerchantsConfig {
    /// Default `<data_dir>/merchants.json`.
    pub file: Option<PathBuf>,
    /// How often the file is checked for changes.
    pub reload_secs: u64,
}

impl Default for MerchantsConfig {
    fn default() -> Self {
        Self { file: None, reload_secs: 5 }
    }
}

impl MerchantsConfig {
    pub fn file_in(&self, data_dir: &Path) -> PathBuf {
        self.file.clone().unwrap_or_else(|| data_dir.join("merchants.json"))
    }

    /// Loads the directory and keeps it fresh.
    pub fn load(&self, data_dir: &Path) -> Result<crate::auth::DirectoryHandle, crate::auth::DirectoryError> {
        let directory = crate::auth::DirectoryHandle::load(&self.file_in(data_dir))?;
        directory.spawn_reloader(std::time::Duration::from_secs(self.reload_secs.max(1)));
        Ok(directory)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_lists_only_where_a_list_is_expected() {
        #[derive(serde::Deserialize)]
        struct Cfg {
            addr: String,
            url: String,
        }
        let env = [("P__ADDR", "127.0.0.1:1"), ("P__URL", "postgres://h/db?a=1,b=2")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let cfg: Cfg = super::load("P", &[], &super::Layers { file: None, env: Some(env) }).unwrap();
        assert_eq!((cfg.addr.as_str(), cfg.url.as_str()), ("127.0.0.1:1", "postgres://h/db?a=1,b=2"));
    }
}
