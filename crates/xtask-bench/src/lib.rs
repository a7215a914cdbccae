//! Benchmark suites behind `cargo xtask bench ...`: they run the real `xtask` binary (and other
//! tools) on synthetic workspaces and report ratios measured side by side in one run, never
//! absolute timings checked by a test.
//!
//! - [`synthetic`]: workspaces from `../shared/bench/gen_monorepo.py` (also usable by turbo),
//!   with the xtask configuration that makes both tools do the same work.
//! - [`timing`]: medians of repeated runs, alternating the commands compared.
//! - [`remote`]: the remote cache (`bench remote`).
//! - [`runner`]: the task runner against Turborepo (`bench runner`), writes `BENCHMARKS.md`.
//! - [`cold`]: cold build and cold/warm test against cargo on a real workspace (`bench cold`).
//! - [`readme`]: the README's commands in a real workspace, all cached, against cargo's
//!   no-op equivalents (`bench readme`).

pub mod cold;
pub mod readme;
pub mod remote;
pub mod runner;
pub mod synthetic;
pub mod timing;
