//! The `cargo metadata` record shared through the remote cache.
//!
//! A fresh CI machine has no local metadata record (`fast.rs`), so every run there starts with
//! `cargo metadata` (0.15 s for the 500-member synthetic workspace, before anything else can
//! start). When a remote cache is configured, the run that had to call cargo stores its record
//! remotely, and the next machine whose key is the same reads it instead.
//!
//! The remote key is the sha256 of everything the local record's key holds, taken before
//! anything ran (the root manifest's path, the [`fast::METADATA_ENV`] values, the digest of
//! every manifest, the lockfile, every cargo configuration and toolchain file, the member globs'
//! expansion and each member's target discovery listing), plus what the local key leaves out
//! because one machine rarely changes it: the cargo that runs (`$CARGO`, else `cargo` from
//! `PATH`, as `cargo metadata` is run) and what its `-V` says here (version, commit hash and
//! date; through rustup's proxy, run from the same directory with the same environment, it
//! picks the toolchain `cargo metadata` would). `-V` runs beside the key's digests.
//! A fetched record must carry exactly that key in its header (checked as a local record is)
//! and the sha256 of its bytes in front of them. A record is only stored when `cargo
//! metadata` left the lockfile as it found it: when cargo had to resolve (a lockfile out of
//! date), its result also depends on the registry's index at that moment, which no key holds.
//!
//! Only runs share records (`load::load_workspace_to_plan`): `graph`, `affected` and the other
//! commands that only read the model do not contact the remote.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use xtask_remote::RemoteCache;
use xtask_util::sha256_hex;

use crate::fast::{self, FastPaths, MetadataKey};

/// The version of the remote record's key and layout.
const SHARED_FORMAT: &str = "xtask-shared-metadata-v1";

/// The cargo that runs `cargo metadata`: the program (`$CARGO`, else `cargo` from `PATH`) and
/// what its `-V` says in this process's directory and environment (version, commit and date;
/// through rustup's proxy, of the toolchain it picks here, as it will for `cargo metadata`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CargoIdentity {
    program: PathBuf,
    version: String,
}

/// The [`CargoIdentity`] of this process; `None` when cargo does not run or says something else.
pub(crate) fn cargo_identity() -> Option<CargoIdentity> {
    let program = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let output = std::process::Command::new(&program)
        .arg("-V")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let version = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && version.starts_with("cargo "))
        .then_some(CargoIdentity { program, version })
}

/// The remote cache, and the key of this workspace's record in it.
pub(crate) struct SharedMetadata {
    remote: RemoteCache,
    key: String,
}

/// The remote cache the root manifest and the environment configure, if any (an invalid
/// configuration gives none: the load reports it).
pub(crate) fn remote_cache(manifest: &Path, root_text: &str) -> Option<RemoteCache> {
    let config = xtask_model::remote_cache_config_of_root_manifest(manifest, root_text)?;
    crate::remote::open_configured(&config).ok()?
}

impl SharedMetadata {
    /// The shared record of `key`, made with `cargo`, in `remote`.
    pub(crate) fn new(
        remote: RemoteCache,
        manifest: &Path,
        key: &MetadataKey,
        cargo: &CargoIdentity,
    ) -> SharedMetadata {
        SharedMetadata {
            remote,
            key: shared_key(manifest, key, cargo),
        }
    }

    /// The record's bytes (as the local record holds them) and its `cargo metadata` JSON,
    /// when the remote has one for this key and it checks out.
    pub(crate) fn fetch(
        &self,
        manifest: &Path,
        root_text: &str,
        key: &MetadataKey,
    ) -> Option<(Vec<u8>, String)> {
        let body = self.remote.fetch_record(&self.key)?;
        let newline = body.iter().position(|&b| b == b'\n')?;
        let (digest, record) = (&body[..newline], &body[newline + 1..]);
        if digest != sha256_hex(record).as_bytes() {
            return None;
        }
        let metadata = fast::metadata_of_record(record, manifest, root_text, key)?;
        Some((record.to_vec(), metadata))
    }

    /// Stores the record of a `cargo metadata` run whose key was `key`, unless cargo changed
    /// the lockfile (it resolved) or the record cannot be made. Whether it was stored.
    pub(crate) fn store(
        &self,
        fast: &FastPaths,
        manifest: &Path,
        key: &MetadataKey,
        metadata: &str,
        members: &BTreeSet<PathBuf>,
    ) -> bool {
        let Some(lockfile) = manifest.parent().map(|root| root.join("Cargo.lock")) else {
            return false;
        };
        if key.files.get(&lockfile) != Some(&fast.file_digest(&lockfile)) {
            return false;
        }
        let Some(record) = fast::metadata_record(manifest, key, metadata, members) else {
            return false;
        };
        let mut body = sha256_hex(&record).into_bytes();
        body.push(b'\n');
        body.extend_from_slice(&record);
        self.remote.store_record(&self.key, &body)
    }
}

/// The remote key of a record (see the module doc).
fn shared_key(manifest: &Path, key: &MetadataKey, cargo: &CargoIdentity) -> String {
    #[derive(Serialize)]
    struct Key<'a> {
        format: &'a str,
        manifest: &'a Path,
        env: std::collections::BTreeMap<String, Option<String>>,
        files: &'a std::collections::BTreeMap<PathBuf, String>,
        discovery: &'a std::collections::BTreeMap<PathBuf, String>,
        cargo: &'a CargoIdentity,
    }
    let key = Key {
        format: SHARED_FORMAT,
        manifest,
        env: fast::env_key(&fast::METADATA_ENV),
        files: &key.files,
        discovery: &key.discovery,
        cargo,
    };
    sha256_hex(&serde_json::to_vec(&key).unwrap_or_default())
}
