//! Phase 1: the manifest's xtask tables as serde structs. Every table of ours rejects unknown
//! keys (`deny_unknown_fields`) and keeps spans (`Spanned`) so phase 2 can name the line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{RemoteMode, RemoteProtocol};

#[derive(Deserialize, Default)]
pub(super) struct RawManifest {
    pub(super) workspace: Option<RawWorkspaceTable>,
    pub(super) package: Option<RawPackageTable>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawWorkspaceTable {
    pub(super) metadata: Option<RawWorkspaceMetadata>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawWorkspaceMetadata {
    pub(super) xtask: Option<RawWorkspaceXtask>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkspaceXtask {
    #[serde(default)]
    pub(super) global_inputs: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) env: Vec<Spanned<String>>,
    pub(super) cache: Option<Spanned<RawCache>>,
    #[serde(default)]
    pub(super) tasks: BTreeMap<Spanned<String>, Spanned<RawTask>>,
    pub(super) release: Option<Spanned<RawRelease>>,
    pub(super) deploy: Option<Spanned<RawDeploy>>,
    pub(super) ci: Option<Spanned<RawCi>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCi {
    pub(super) setup: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelease {
    pub(super) mode: Option<Spanned<String>>,
    pub(super) branch: Option<Spanned<String>>,
    pub(super) tag_format: Option<Spanned<String>>,
    pub(super) remote: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDeploy {
    pub(super) namespace: Spanned<String>,
    pub(super) registry: Spanned<String>,
    pub(super) domain: Spanned<String>,
    pub(super) monitoring: Option<bool>,
    pub(super) runbook_base_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub(super) dir: Option<Spanned<String>>,
    pub(super) max_size: Option<Spanned<String>>,
    pub(super) eviction: Option<bool>,
    pub(super) remote: Option<Spanned<RawRemote>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRemote {
    pub(super) protocol: Option<RemoteProtocol>,
    pub(super) url: Option<String>,
    pub(super) team: Option<String>,
    pub(super) mode: Option<RemoteMode>,
    pub(super) timeout_secs: Option<u64>,
    pub(super) retries: Option<u32>,
    pub(super) upload_concurrency: Option<usize>,
    /// Accepted by the parser only to reject it with a clear message: secrets live in the
    /// environment, never in a file of the repository.
    pub(super) token: Option<toml::Value>,
    pub(super) signature_key: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTask {
    pub(super) command: Option<Vec<String>>,
    pub(super) inputs: Option<Vec<String>>,
    pub(super) outputs: Option<Vec<String>>,
    pub(super) env: Option<Vec<String>>,
    pub(super) depends_on: Option<Vec<Spanned<String>>>,
    pub(super) cache: Option<bool>,
    pub(super) packages: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawPackageTable {
    pub(super) metadata: Option<RawPackageMetadata>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawPackageMetadata {
    pub(super) xtask: Option<RawPackageXtask>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPackageXtask {
    #[serde(default)]
    pub(super) tasks: BTreeMap<Spanned<String>, Spanned<RawTask>>,
    pub(super) app: Option<Spanned<RawApp>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    pub(super) port: Spanned<i64>,
    pub(super) health_path: Option<Spanned<String>>,
    pub(super) ready_path: Option<Spanned<String>>,
    pub(super) metrics_path: Option<Spanned<String>>,
    pub(super) resources: Option<Spanned<RawResources>>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) services: Vec<Spanned<String>>,
    pub(super) ingress_path: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) talks_to: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) secrets: Vec<Spanned<String>>,
    pub(super) monitoring: Option<Spanned<RawMonitoring>>,
    #[serde(default)]
    pub(super) smoke: Vec<Spanned<RawSmokeRequest>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMonitoring {
    pub(super) latency_p99_ms: Option<Spanned<i64>>,
    pub(super) error_rate_percent: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmokeRequest {
    pub(super) method: Option<Spanned<String>>,
    pub(super) path: Spanned<String>,
    pub(super) status: Option<Spanned<i64>>,
    pub(super) body_contains: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResources {
    pub(super) cpu_request: Option<Spanned<String>>,
    pub(super) cpu_limit: Option<Spanned<String>>,
    pub(super) memory_request: Option<Spanned<String>>,
    pub(super) memory_limit: Option<Spanned<String>>,
}
