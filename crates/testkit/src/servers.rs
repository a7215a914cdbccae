//! Real servers started by tests on 127.0.0.1 and free ports: the open-source Turborepo remote
//! cache (npm `turborepo-remote-cache`, API v8) and nginx with WebDAV (the Bazel HTTP cache
//! protocol). Each guard kills its server on drop (single-process servers, so nothing is left
//! behind) and owns its temp dirs.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::tool;

/// A free TCP port on 127.0.0.1 (bound, then released: [`xtask_util::free_port`]); panics
/// when none can be bound.
pub fn free_port() -> u16 {
    xtask_util::free_port().expect("bind 127.0.0.1:0")
}

/// Waits until something accepts connections on `port`, or panics with `log`'s content.
fn wait_for_port(port: u16, child: &mut Child, log: &Path, what: &str) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status} before listening:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!(
        "{what} did not listen on {addr} within 30 s:\n{}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

/// A running server process with its temp dir; killed on drop.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    /// Where the server keeps its data (artifacts, blobs).
    pub storage: PathBuf,
    dir: tempfile::TempDir,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every regular file under the storage dir, relative, sorted.
    pub fn stored_files(&self) -> Vec<String> {
        let mut found = Vec::new();
        collect_files(&self.storage, &self.storage, &mut found);
        found.sort();
        found
    }

    /// Stops the server now (as if it crashed); the storage stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's own log (stdout and stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn collect_files(base: &Path, dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(base, &path, found);
        } else if let Ok(relative) = path.strip_prefix(base) {
            found.push(relative.to_string_lossy().into_owned());
        }
    }
}

fn log_file(dir: &Path) -> io::Result<(fs::File, fs::File)> {
    let log = fs::File::create(dir.join("server.log"))?;
    let err = log.try_clone()?;
    Ok((log, err))
}

/// Starts `turborepo-remote-cache` with local storage and `token`. With `signature_key`, the
/// server keeps the `x-artifact-tag` of uploads (it drops them otherwise).
pub fn turborepo_remote_cache(token: &str, signature_key: Option<&str>) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("storage");
    fs::create_dir_all(&storage).expect("create storage");
    let port = free_port();
    let (out, err) = log_file(dir.path()).expect("create log");
    let mut command = Command::new(tool("node"));
    command
        .arg(tool("turborepo-remote-cache"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("STORAGE_PROVIDER", "local")
        .env("STORAGE_PATH", &storage)
        .env("STORAGE_PATH_USE_TMP_FOLDER", "false")
        .env("TURBO_TOKEN", token)
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some(key) = signature_key {
        command.env("TURBO_REMOTE_CACHE_SIGNATURE_KEY", key);
    }
    let mut child = command.spawn().expect("start turborepo-remote-cache");
    wait_for_port(
        port,
        &mut child,
        &dir.path().join("server.log"),
        "turborepo-remote-cache",
    );
    Server {
        child: Some(child),
        port,
        storage,
        dir,
    }
}

/// How the nginx test server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nginx {
    /// A Bazel HTTP cache: WebDAV PUT/GET/HEAD under `/ac/` and `/cas/`.
    BazelCache,
    /// Every request answers 500 (a broken cache server).
    Error500,
}

/// Starts nginx in the foreground as a single process (no workers to orphan).
pub fn nginx(mode: Nginx) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("storage");
    for sub in ["storage/ac", "storage/cas", "tmp", "logs"] {
        fs::create_dir_all(dir.path().join(sub)).expect("create nginx dirs");
    }
    let port = free_port();
    let root = dir.path().display().to_string();
    let location = match mode {
        Nginx::BazelCache => format!(
            r#"location ~ "^/(ac|cas)/[0-9a-f]{{64}}$" {{
            root {root}/storage;
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
            client_max_body_size 0;
            limit_except GET HEAD PUT {{ deny all; }}
        }}"#
        ),
        Nginx::Error500 => "location / { return 500; }".to_string(),
    };
    let conf = format!(
        r#"daemon off;
master_process off;
user root;
pid {root}/nginx.pid;
error_log {root}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        {location}
    }}
}}
"#
    );
    let conf_path = dir.path().join("nginx.conf");
    fs::write(&conf_path, conf).expect("write nginx.conf");
    let (out, err) = log_file(dir.path()).expect("create log");
    let mut child = Command::new(tool("nginx"))
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start nginx");
    wait_for_port(
        port,
        &mut child,
        &dir.path().join("logs/error.log"),
        "nginx",
    );
    Server {
        child: Some(child),
        port,
        storage,
        dir,
    }
}
