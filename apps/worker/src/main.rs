//! worker (work in progress).
fn main() {}
