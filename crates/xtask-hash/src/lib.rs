//! Content hashing for `cargo xtask`: which files are a task's inputs, their sha256
//! digests, the external crates a package locks, and the task hash key built from all of it.
//!
//! The pipeline is: [`discover_inputs`] lists a package's input files (ignore files
//! respected, outputs excluded), [`hash_files`] digests them in parallel,
//! [`Lockfile::external_closure`] names the locked crates a package builds against, and a
//! [`TaskKey`] gathers those with the task definition, toolchain and environment into one
//! canonical encoding whose sha256 is the task hash. [`StatCache`] remembers digests by
//! `(size, mtime, ctime, inode)` so unchanged files are not read again. [`diff_keys`] explains why two keys differ.
//!
//! # Invariants
//!
//! - `xtask-hash` never runs processes and knows nothing of `cargo_metadata`: it reads files
//!   and computes digests only. The caller runs `rustc -vV`, reads the cargo metadata and
//!   passes plain strings and paths in.
//! - It never depends on the current directory: every path it takes is absolute, every
//!   path it returns or puts in a key is workspace-relative with forward slashes.
//! - It never reads ignore rules from outside the workspace root (no global gitignore, no
//!   `.git/info/exclude`, no `.gitignore` above the workspace), so the same tree gives the
//!   same inputs on every machine.
//! - It never stores an environment variable's value, only its sha256.
//! - It prints nothing; every failure is a [`HashError`] naming the path involved.

mod diff;
mod error;
mod files;
mod inputs;
mod key;
mod listing_cache;
mod lockfile;
mod observed;
mod stat_cache;
#[cfg(test)]
mod test_fixture;

pub use diff::{DefinitionField, KeyChange, ToolchainField, diff_keys};
pub use error::HashError;
pub use files::{EXECUTABLE_SUFFIX, hash_file, hash_files};
pub use inputs::{InputFile, InputSpec, discover_global_inputs, discover_inputs};
pub use key::{
    KEY_SCHEMA, TaskDefinitionKey, TaskKey, ToolchainKey, env_value_digest, source_fingerprint,
};
pub use listing_cache::{ListingCache, UsedListing};
pub use lockfile::{LockedPackage, Lockfile};
pub use observed::{
    MISSING, OBSERVED_FIELD, ObservedChange, ObservedInputs, normalize, observed_digest,
    portable_path, resolve_portable,
};
pub use stat_cache::{
    FileStat, HEADER as STAT_CACHE_HEADER, StatCache, StatCacheCounts, file_system_clock,
};
/// Re-exported from `xtask-util` (their one home) for callers that still name them here.
pub use xtask_util::{sha256_hex, write_atomically};
