//! The workspace model: what `cargo metadata` says about the workspace (packages, targets,
//! features, dependency edges) joined with the validated `[workspace.metadata.xtask]` and
//! `[package.metadata.xtask]` configuration.
//!
//! Invariants:
//! - `xtask-model` never hashes, caches or runs tasks; the only process it starts is
//!   `cargo metadata` (in [`load_metadata`]), and [`Workspace::from_metadata`] does no process work
//!   at all, so callers can cache the metadata JSON and skip the process.
//! - Configuration is parsed in two phases: raw serde structs that reject unknown keys, then a
//!   validated model. Every problem found is reported, each with its file, key and line, before
//!   anything is run.

mod config;
mod error;
mod quantity;
mod task_name;
mod workspace;

pub use config::{
    AppConfig, BUILTIN_TASKS, BackingService, CacheConfig, CargoTask, CiConfig, DEFAULT_CACHE_DIR,
    DEFAULT_CACHE_MAX_SIZE, DependsOn, DeployConfig, Monitoring, ReleaseConfig, ReleaseMode,
    RemoteCacheConfig, RemoteMode, RemoteProtocol, Resources, SMOKE_METHODS, SmokeRequest, TaskDef,
    TaskKind, TaskOrigin, WorkspaceConfig, remote_cache_config_of_root_manifest,
};
pub use error::{ConfigProblem, ModelError, UnknownPackage};
pub use quantity::{CpuQuantity, MemoryQuantity, parse_size};
pub use task_name::TaskName;
pub use workspace::{DepKind, Edge, Package, PackageIndex, Target, Workspace, load_metadata};
