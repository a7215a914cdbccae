//! xtask-engine (work in progress).
