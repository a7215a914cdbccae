//! Integration tests of the local cache: real files in temp dirs, one test binary.
#![cfg(unix)]

mod corruption;
mod escapes;
mod import;
mod invisible;
mod maintenance;
mod round_trip;
mod safety;
mod support;
mod unpack;
