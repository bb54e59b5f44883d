//! The effective configuration as a config file: what `check-config` prints.
//!
//! [`Config`] serializes under the TOML keys of [`Options`](super::Options) (one flat table:
//! `auth` / `upstream` options flattened and renamed back to their keys, namespaces as their
//! paths, durations as `<n>ms`, every default written out), so the output parses back and
//! resolves to the same configuration. Secrets (`api_key`, `cluster_secret`, `jwt_secret`) are
//! printed as [`REDACTED`]; a file still holding that placeholder is refused by
//! [`Config::resolve`] with the key named, rather than run with a secret everyone knows.
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::{Config, Dur, NamespaceSpec};

/// What a secret is printed as in the effective configuration.
pub const REDACTED: &str = "<redacted>";

impl Config {
    /// The effective configuration as TOML (secrets redacted), for `check-config` and logs. A
    /// valid config file: read back, it gives the same configuration (secrets aside).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

impl Serialize for NamespaceSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

pub(super) fn redact_opt<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str(REDACTED),
        None => s.serialize_none(),
    }
}

pub(super) fn redact<S: Serializer>(keys: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(keys.iter().map(|_| REDACTED))
}

pub(super) fn dur<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&Dur(*d).to_string())
}
