//! api (work in progress).
fn main() {}
