//! Small helpers shared by the xtask crates, each defined once (rust-analyzer's `stdx`):
//! [`write_atomically`] (and [`write_hint_atomically`], without the fsync), the sha256 helpers
//! ([`sha256_hex`], [`sha256_file`]), [`parallel_map`] / [`try_parallel_map`] on scoped
//! threads, [`drop_in_background`], the workspace-relative path [`RelPath`], [`ParentDirs`]
//! (each directory created once), UTC time formatting ([`timefmt`]) and [`free_port`].
//!
//! What this crate does NOT do: it depends on no crate of this workspace (it is the leaf every
//! other crate may use), knows nothing of cargo, tasks or caches, prints nothing, and starts no
//! process. Every IO error names its path ([`FileError`]).

mod atomic_write;
mod digest;
mod error;
mod net;
mod parallel;
mod parent_dirs;
mod rel_path;
mod rng;
pub mod timefmt;

pub use atomic_write::{write_atomically, write_hint_atomically};
pub use digest::{is_sha256_hex, sha256_file, sha256_hex, sha256_reader, to_hex};
pub use error::FileError;
pub use net::free_port;
pub use parallel::{drop_in_background, parallel_map, pipeline, receive, try_parallel_map};
pub use parent_dirs::ParentDirs;
pub use rel_path::{RelPath, RelPathError};
pub use rng::{GOLDEN_GAMMA, SplitMix64};
