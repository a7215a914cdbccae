//! Shared code of the apps (work in progress).
