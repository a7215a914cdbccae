//! Benchmark suites behind `cargo xtask bench ...`: they run the real `xtask` binary (and other
//! tools) on synthetic workspaces and report ratios measured side by side in one run, never
//! absolute timings checked by a test. Nothing outside the repository is needed but the tools
//! compared (found by [`tools`], or given on the command line).
//!
//! - [`synthetic`]: the generator of synthetic workspaces (Cargo + npm + turbo), seeded.
//! - [`timing`]: medians of repeated runs, alternating the commands compared.
//! - [`load`]: the deliberate load (`--load N`) and the disturbance monitor (`/proc/stat`).
//! - [`tools`]: finding real tools (`target/ci-tools/bin`, `PATH`), with errors naming them.
//! - [`servers`]: real servers on loopback (the remote cache), also wrapped by `testkit`.
//! - [`remote`]: the remote cache (`bench remote`).
//! - [`runner`]: the task runner against Turborepo (`bench runner`), writes `BENCHMARKS.md`.
//! - [`ci`]: the fresh CI machine: a one-line edit on an empty `target/` with a warm remote
//!   cache, without and with the cached cargo units, against a warm `target/` (`bench ci`).
//! - [`cold`]: cold build and cold/warm test against cargo on a real workspace (`bench cold`).
//! - [`readme`]: the README's commands in a real workspace, all cached, against cargo's
//!   no-op equivalents (`bench readme`).

pub mod ci;
pub mod cold;
pub mod load;
pub mod readme;
pub mod remote;
pub mod runner;
pub mod sccache;
pub mod servers;
pub mod synthetic;
pub mod timing;
pub mod tools;
