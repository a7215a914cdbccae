//! xtask-hash (work in progress).
