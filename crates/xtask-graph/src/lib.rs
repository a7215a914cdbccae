//! xtask-graph (work in progress).
