//! Real servers on 127.0.0.1 and free ports, the one home of this code: `bench remote` starts
//! the open-source Turborepo remote cache (npm `turborepo-remote-cache`, API v8) through
//! [`turborepo_remote_cache`], and `bench ci` nginx as sccache's WebDAV backend
//! ([`nginx`]); `testkit` wraps these functions for tests (panicking on error). A [`Server`] kills its process on drop (single-process
//! servers, so nothing is left behind) and owns its temp dir. Errors name the server and carry
//! its log.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A free TCP port on 127.0.0.1 ([`xtask_util::free_port`]), as an error with context.
pub fn free_port() -> anyhow::Result<u16> {
    xtask_util::free_port().context("failed to bind 127.0.0.1:0 for a free port")
}

/// A running server process with its temp dir; killed on drop.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    /// Where the server keeps its data (artifacts, blobs).
    pub storage: PathBuf,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("port", &self.port)
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

/// A server about to start: its temp dir (with `storage/` and the log file `server.log`)
/// and port, for the caller to build its command from.
pub struct Prepared {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub storage: PathBuf,
}

impl Prepared {
    /// A temp dir with `storage/` and a free port.
    pub fn new() -> anyhow::Result<Prepared> {
        let dir = tempfile::tempdir().context("failed to create a temp dir for a server")?;
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage)
            .with_context(|| format!("failed to create `{}`", storage.display()))?;
        Ok(Prepared {
            dir,
            port: free_port()?,
            storage,
        })
    }

    /// The file that receives the server's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }
}

impl Server {
    /// Starts `command` (stdin closed, output to `prepared.log_path()`) and waits until it
    /// accepts connections on `prepared.port`; `log` is the file whose content goes into the
    /// error when it exits or does not listen within 30 s.
    pub fn spawn(
        what: &str,
        mut command: Command,
        prepared: Prepared,
        log: &Path,
    ) -> anyhow::Result<Server> {
        let log_path = prepared.log_path();
        let out = fs::File::create(&log_path)
            .with_context(|| format!("failed to create `{}`", log_path.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("failed to open `{}` twice", log_path.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("failed to start {what} ({:?})", command.get_program()))?;
        let mut server = Server {
            child: Some(child),
            port: prepared.port,
            storage: prepared.storage,
            dir: prepared.dir,
        };
        server.wait_for_port(what, log)?;
        Ok(server)
    }

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

    /// The server's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn wait_for_port(&mut self, what: &str, log: &Path) -> anyhow::Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                bail!(
                    "{what} exited with {status} before listening on {addr}:\n{}",
                    fs::read_to_string(log).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        bail!(
            "{what} did not listen on {addr} within 30 s:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The programs that run `turborepo-remote-cache`: `node` and the package's `dist/cli.js`.
#[derive(Debug, Clone)]
pub struct RemoteCacheTools {
    pub node: PathBuf,
    pub server: PathBuf,
}

impl RemoteCacheTools {
    /// `node` and the server's `dist/cli.js`: the paths given (`--node`,
    /// `--remote-cache-server`), else found in `tools_dir` or on `PATH`; an error names the
    /// install command when one is missing.
    pub fn find(
        node: Option<&Path>,
        server: Option<&Path>,
        tools_dir: &Path,
    ) -> anyhow::Result<RemoteCacheTools> {
        Ok(RemoteCacheTools {
            node: crate::tools::tool_or_given(node, "--node", tools_dir, "node", "remote-cache")?,
            server: crate::tools::tool_or_given(
                server,
                "--remote-cache-server",
                tools_dir,
                "turborepo-remote-cache",
                "remote-cache",
            )?,
        })
    }
}

/// Starts `turborepo-remote-cache` with local storage and `token`. With `signature_key`, the
/// server keeps the `x-artifact-tag` of uploads (it drops them otherwise).
pub fn turborepo_remote_cache(
    tools: &RemoteCacheTools,
    token: &str,
    signature_key: Option<&str>,
) -> anyhow::Result<Server> {
    let prepared = Prepared::new()?;
    let log = prepared.log_path();
    let mut command = Command::new(&tools.node);
    command
        .arg(&tools.server)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOST", "127.0.0.1")
        .env("PORT", prepared.port.to_string())
        .env("STORAGE_PROVIDER", "local")
        .env("STORAGE_PATH", &prepared.storage)
        .env("STORAGE_PATH_USE_TMP_FOLDER", "false")
        .env("TURBO_TOKEN", token)
        // Cargo's registry units of a real workspace are one artifact of hundreds of MB; the
        // server's default limit is 100 MB.
        .env("BODY_LIMIT", "4294967296")
        .env("LOG_LEVEL", "warn");
    if let Some(key) = signature_key {
        command.env("TURBO_REMOTE_CACHE_SIGNATURE_KEY", key);
    }
    Server::spawn("turborepo-remote-cache", command, prepared, &log)
}

/// How an nginx server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nginx {
    /// A Bazel HTTP cache: WebDAV PUT/GET/HEAD under `/ac/` and `/cas/`.
    BazelCache,
    /// A WebDAV share of the whole storage dir (PUT with parent directories, GET, HEAD,
    /// DELETE, MKCOL, and PROPFIND from Debian's `libnginx-mod-http-dav-ext`, without which
    /// sccache opens the cache read-only): sccache's `SCCACHE_WEBDAV_ENDPOINT`.
    WebDav,
    /// Every request answers 500 (a broken cache server).
    Error500,
}

/// Debian's `libnginx-mod-http-dav-ext` (PROPFIND for [`Nginx::WebDav`]).
const DAV_EXT_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so";

/// Starts `program` (nginx) in the foreground as a single process (no workers to orphan),
/// serving `mode` from the server's storage dir.
pub fn nginx(program: &Path, mode: Nginx) -> anyhow::Result<Server> {
    let prepared = Prepared::new()?;
    let dir = prepared.dir.path().to_path_buf();
    for sub in ["storage/ac", "storage/cas", "tmp", "logs"] {
        let sub = dir.join(sub);
        fs::create_dir_all(&sub)
            .with_context(|| format!("failed to create `{}`", sub.display()))?;
    }
    let port = prepared.port;
    let root = dir.display().to_string();
    let mut modules = String::new();
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
        Nginx::WebDav => {
            let module = Path::new(DAV_EXT_MODULE);
            if !module.is_file() {
                bail!(
                    "nginx's WebDAV PROPFIND module `{}` is not installed: run `bash \
                     .ci/install-tools sccache`",
                    module.display()
                );
            }
            modules = format!("load_module {};\n", module.display());
            format!(
                r#"location / {{
            root {root}/storage;
            dav_methods PUT DELETE MKCOL COPY MOVE;
            dav_ext_methods PROPFIND OPTIONS;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
            client_max_body_size 0;
        }}"#
            )
        }
        Nginx::Error500 => "location / { return 500; }".to_string(),
    };
    let conf = format!(
        r#"{modules}daemon off;
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
    let conf_path = dir.join("nginx.conf");
    fs::write(&conf_path, conf)
        .with_context(|| format!("failed to write `{}`", conf_path.display()))?;
    let mut command = Command::new(program);
    command.arg("-c").arg(&conf_path).arg("-p").arg(&dir);
    Server::spawn("nginx", command, prepared, &dir.join("logs/error.log"))
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
