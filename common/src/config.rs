//! Layered configuration: serde defaults → optional file → environment with a
//! service prefix and `__` separators (`VAULT__REDIS__URL` → `redis.url`).
use std::path::Path;

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] config::ConfigError);

/// Loads `T` for the service whose environment prefix is `prefix` (e.g. `VAULT`).
/// Errors name the offending key.
pub fn load<T: DeserializeOwned>(prefix: &str, file: Option<&Path>) -> Result<T, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(file) = file {
        builder = builder.add_source(config::File::from(file).required(true));
    }
    let env = config::Environment::with_prefix(prefix).prefix_separator("__").separator("__").try_parsing(true);
    Ok(builder.add_source(env).build()?.try_deserialize()?)
}
