//! xtask-model (work in progress).
