//! `cargo xtask`: the command line of the build tool.
fn main() {}
