//! Real servers started by tests on 127.0.0.1 and free ports: the open-source Turborepo remote
//! cache (npm `turborepo-remote-cache`, API v8), nginx with WebDAV (the Bazel HTTP cache
//! protocol) and Debian's `docker-registry` (an OCI registry, distribution 2.8). The process handling has one home, `xtask_bench::servers` (`bench remote` starts
//! the same server at run time); here the tools are found with [`crate::tool`] and a failure
//! panics, as a test wants. Each guard kills its server on drop and owns its temp dirs.

use std::fs;
use std::process::Command;

pub use xtask_bench::servers::{Nginx, Server};
use xtask_bench::servers::{Prepared, RemoteCacheTools};

use crate::tool;

/// A free TCP port on 127.0.0.1 (bound, then released: [`xtask_util::free_port`]); panics
/// when none can be bound.
pub fn free_port() -> u16 {
    xtask_util::free_port().expect("bind 127.0.0.1:0")
}

/// Starts `turborepo-remote-cache` with local storage and `token`. With `signature_key`, the
/// server keeps the `x-artifact-tag` of uploads (it drops them otherwise).
pub fn turborepo_remote_cache(token: &str, signature_key: Option<&str>) -> Server {
    let tools = RemoteCacheTools {
        node: tool("node"),
        server: tool("turborepo-remote-cache"),
    };
    xtask_bench::servers::turborepo_remote_cache(&tools, token, signature_key)
        .unwrap_or_else(|error| panic!("{error:#}"))
}

/// Starts Debian's `docker-registry` (distribution) on a free port, storage in the guard's
/// temp dir; its access log (one line per request, `"PUT /v2/NAME/manifests/TAG HTTP/1.1"
/// 201`) is [`Server::log`].
pub fn docker_registry() -> Server {
    let prepared = Prepared::new().unwrap_or_else(|error| panic!("{error:#}"));
    start_docker_registry(prepared)
}

/// [`docker_registry`] on `port` (a port a test reserved, e.g. to be unreachable first).
pub fn docker_registry_on(port: u16) -> Server {
    let mut prepared = Prepared::new().unwrap_or_else(|error| panic!("{error:#}"));
    prepared.port = port;
    start_docker_registry(prepared)
}

fn start_docker_registry(prepared: Prepared) -> Server {
    let config = prepared.dir.path().join("config.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{}\n",
            prepared.storage.display(),
            prepared.port
        ),
    )
    .expect("write the registry's config.yml");
    let log = prepared.log_path();
    let mut command = Command::new(tool("docker-registry"));
    command.arg("serve").arg(&config);
    Server::spawn("docker-registry", command, prepared, &log)
        .unwrap_or_else(|error| panic!("{error:#}"))
}

/// Starts nginx ([`xtask_bench::servers::nginx`]) in the foreground as a single process.
pub fn nginx(mode: Nginx) -> Server {
    xtask_bench::servers::nginx(&tool("nginx"), mode).unwrap_or_else(|error| panic!("{error:#}"))
}
