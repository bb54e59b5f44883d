//! All of the gateway's configuration.
//!
//! Every option exists three times over: a command-line flag, an environment variable
//! (`SIO_GATEWAY_` + the flag name in upper case, dashes as underscores) and a key in the TOML
//! file given with `--config` (the flag name with underscores). Precedence is
//! flag > env > file > built-in default. clap resolves flag vs env; the file is merged here.
//!
//! * [`options`]: the raw, all-optional layer [`Options`], declared once for clap and serde
//!   (so flags and TOML keys cannot drift apart), with its merge and the default each option
//!   shows in `--help`; the command line [`Cli`].
//! * [`advertise`]: the rule an advertise URL follows (also applied to peers' registry entries).
//! * [`defaults`]: every built-in default value, written once.
//! * [`resolve`]: the validated, defaulted [`Config`] the rest of the gateway reads. Every
//!   check, including those spanning several options, is made there, so `check-config`
//!   catches whatever start-up would refuse.
//! * [`effective`]: [`Config::to_toml`], the effective configuration `check-config` prints,
//!   which is itself a valid config file.
pub mod advertise;
pub mod defaults;
pub mod effective;
pub mod history;
pub mod options;
pub mod resolve;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use defaults::{MIN_WS_READ_BUFFER, WS_READ_BUFFER as DEFAULT_WS_READ_BUFFER};
pub use effective::REDACTED;
pub use history::HistorySpec;
pub use options::{
    AdminUi, AuthExpiry, AuthMode, Cli, Command, Dur, LogFormat, Options, Readiness, RedisPubSub,
    RedisSubscriptionMode, UpstreamMode,
};
pub use resolve::{
    AuthConfig, Config, NamespaceSpec, SHIPPED_DEMO_SECRETS, UpstreamConfig, is_demo_secret,
    url_for_log,
};

/// Errors from reading or validating configuration. Each names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}
