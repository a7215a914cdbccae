//! Containers for the workspace's apps (packages with `[package.metadata.xtask.app]`): the
//! generated, committed and drift-checked `Dockerfile`s, `.dockerignore`, `compose.yaml` and
//! `.env.example` (`cargo xtask docker`), the minimal workspace subset that builds one app
//! (`prune`), daemonless reproducible OCI images of the apps' static binaries, built through
//! the cached engine and cached themselves (`image`), their upload with the OCI distribution
//! API (`image --push`), and the `bench image` benchmark.
//!
//! Invariants:
//! - Generators ([`generate`]) are pure functions of the model; only [`sync`] writes them, in
//!   one place, with write and check modes.
//! - Images never depend on the clock or the file system's metadata: the same binary, metadata
//!   and SOURCE_DATE_EPOCH give byte-identical blobs ([`oci`]).
//! - Registry credentials come from the environment only and never appear in output or errors.
//! - Every file this crate writes outside its temporary directories is written atomically
//!   (temporary file or directory, then rename).

pub mod bench;
pub mod generate;
pub mod image;
pub mod oci;
pub mod prune;
pub mod push;
pub mod sync;

pub use bench::bench_image;
pub use image::{ImageOptions, image};
pub use prune::{PruneOptions, prune};
pub use sync::{DockerOptions, docker};
