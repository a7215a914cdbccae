//! xtask-cache (work in progress).
