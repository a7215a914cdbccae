//! `cargo xtask dev` end to end: the real binary on a copy of `fixtures/dev` (two tiny std-only
//! HTTP apps, `api` and `worker`, a crate only the worker uses), real processes, loopback HTTP.
//! Each test builds into its own directory under cargo's `CARGO_TARGET_TMPDIR`, so reruns are
//! incremental.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::Fixture;
use testkit::servers::free_port;

const FIRST_BUILD: Duration = Duration::from_secs(600);
const REBUILD: Duration = Duration::from_secs(180);

/// A running `xtask dev` with its output collected; SIGTERM (then SIGKILL) on drop.
struct Dev {
    child: Child,
    output: Arc<Mutex<String>>,
    fixture: Fixture,
    api_port: u16,
    worker_port: u16,
}

impl Dev {
    fn start(test: &str, args: &[&str], setup: impl FnOnce(&Fixture)) -> Dev {
        let fixture = Fixture::new("dev");
        let api_port = free_port();
        let worker_port = free_port();
        fixture.replace(
            "apps/api/Cargo.toml",
            "port = 18080",
            &format!("port = {api_port}"),
        );
        fixture.replace(
            "apps/worker/Cargo.toml",
            "port = 18081",
            &format!("port = {worker_port}"),
        );
        setup(&fixture);
        let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dev-{test}"));
        let mut full = vec!["dev"];
        full.extend_from_slice(args);
        let mut command: Command = fixture.xtask_command(&full);
        command
            .env("CARGO_TARGET_DIR", &target)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start xtask dev");
        let output = Arc::new(Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut buffer = [0_u8; 4096];
                while let Ok(n) = pipe.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    output
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            });
        }
        Dev {
            child,
            output,
            fixture,
            api_port,
            worker_port,
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Polls `GET path` on `port` until `check` accepts the body.
    fn wait_for_body(
        &mut self,
        port: u16,
        path: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("xtask dev exited ({status}):\n{}", self.output());
            }
            let last = get(port, path);
            if let Ok((200, body)) = &last
                && check(body)
            {
                return body.clone();
            }
            assert!(
                Instant::now() < deadline,
                "GET {path} on port {port}: last {last:?} after {timeout:?}; dev output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for_output(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.output().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the dev output after {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&mut self, port: u16) -> u32 {
        let body = self.wait_for_body(port, "/pid", REBUILD, |_| true);
        body.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// SIGTERM to `dev`; its exit status within `timeout`.
    fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "xtask dev did not exit within {timeout:?} of SIGTERM:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.child.id(), "TERM");
            std::thread::sleep(Duration::from_secs(3));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn an_edit_restarts_only_the_apps_that_depend_on_it_and_refuses_no_connection() {
    let mut dev = Dev::start("restart", &["--grace-period", "5s"], |_| {});
    let (api, worker) = (dev.api_port, dev.worker_port);
    dev.wait_for_body(api, "/v1/greeting", FIRST_BUILD, |b| b == "hello v1");
    dev.wait_for_body(worker, "/v1/job", FIRST_BUILD, |b| b == "job v1");
    let api_pid = dev.pid(api);
    let worker_pid = dev.pid(worker);
    // The output is copied from dev's pipes by a thread: wait for it rather than race it.
    dev.wait_for_output(&format!("api | stdout line from pid {api_pid}"), REBUILD);
    dev.wait_for_output("worker | serving on", REBUILD);

    // Hammer the api while it is replaced: the socket stays open, so nothing is refused.
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let hammer = {
        let (stop, refused) = (Arc::clone(&stop), Arc::clone(&refused));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Err(error) = get(api, "/health")
                    && error.kind() == std::io::ErrorKind::ConnectionRefused
                {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    dev.fixture
        .replace("apps/api/src/main.rs", "\"hello v1\"", "\"hello v2\"");
    dev.wait_for_body(api, "/v1/greeting", REBUILD, |b| b == "hello v2");
    stop.store(true, Ordering::Relaxed);
    hammer.join().unwrap();
    assert_eq!(
        refused.load(Ordering::Relaxed),
        0,
        "connections were refused"
    );
    let new_api_pid = dev.pid(api);
    assert_ne!(new_api_pid, api_pid);
    assert!(
        !alive(api_pid),
        "the old api (pid {api_pid}) is still running"
    );
    assert_eq!(dev.pid(worker), worker_pid, "the worker was restarted");
    dev.wait_for_output("changed: apps/api/src/main.rs -> rebuilding api\n", REBUILD);

    // A crate only the worker depends on: the api keeps running.
    dev.fixture
        .replace("crates/jobs/src/lib.rs", "\"job v1\"", "\"job v2\"");
    dev.wait_for_body(worker, "/v1/job", REBUILD, |b| b == "job v2");
    let new_worker_pid = dev.pid(worker);
    assert_ne!(new_worker_pid, worker_pid);
    assert!(!alive(worker_pid));
    assert_eq!(dev.pid(api), new_api_pid, "the api was restarted");
    dev.wait_for_output(
        "changed: crates/jobs/src/lib.rs -> rebuilding worker\n",
        REBUILD,
    );

    // Ignored files and the target dir never trigger a build.
    let builds = dev.output().matches("[dev] building").count();
    dev.fixture
        .write("apps/api/debug.log", "ignored by .gitignore\n");
    dev.fixture
        .write("target/anything.rs", "in the target dir\n");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        dev.output().matches("[dev] building").count(),
        builds,
        "{}",
        dev.output()
    );

    let status = dev.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", dev.output());
    assert!(!alive(new_api_pid) && !alive(new_worker_pid));
}

#[test]
fn a_build_error_keeps_the_old_process_serving_until_the_fix() {
    let mut dev = Dev::start("error", &["api"], |_| {});
    let api = dev.api_port;
    dev.wait_for_body(api, "/v1/greeting", FIRST_BUILD, |b| b == "hello v1");
    let pid = dev.pid(api);
    assert!(
        get(dev.worker_port, "/health").is_err(),
        "only `api` was asked for"
    );

    dev.fixture.replace(
        "apps/api/src/main.rs",
        "\"hello v1\".to_string()",
        "\"hello v1\".to_string() +",
    );
    dev.wait_for_output("api: build failed, the running process", REBUILD);
    assert!(dev.output().contains("error"), "the compile error is shown");
    assert_eq!(get(api, "/health").unwrap(), (200, "ok".to_string()));
    assert_eq!(dev.pid(api), pid, "the old process keeps serving");

    dev.fixture.replace(
        "apps/api/src/main.rs",
        "\"hello v1\".to_string() +",
        "\"hello fixed\".to_string()",
    );
    dev.wait_for_body(api, "/v1/greeting", REBUILD, |b| b == "hello fixed");
    assert_ne!(dev.pid(api), pid);
    assert!(!alive(pid));
    assert!(dev.terminate(Duration::from_secs(20)).success());
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_the_grace_period_and_nothing_survives_dev() {
    let mut dev = Dev::start("stubborn", &["api", "--grace-period", "700ms"], |fixture| {
        fixture.write(".env", "# from the test\nIGNORE_SIGTERM=1\nSPAWN_CHILD=1\n");
    });
    let api = dev.api_port;
    dev.wait_for_body(api, "/v1/greeting", FIRST_BUILD, |b| b == "hello v1");
    let first = dev.wait_for_body(api, "/pid", REBUILD, |b| b.contains(' '));
    let (pid, helper) = pids(&first);
    assert!(alive(pid) && alive(helper));

    let started = Instant::now();
    dev.fixture
        .replace("apps/api/src/main.rs", "\"hello v1\"", "\"hello v2\"");
    dev.wait_for_body(api, "/v1/greeting", REBUILD, |b| b == "hello v2");
    assert!(started.elapsed() >= Duration::from_millis(700));
    dev.wait_for_output(
        &format!("api: pid {pid} outlived the grace period (700ms), SIGKILLed its process group"),
        REBUILD,
    );
    assert!(!alive(pid) && !alive(helper), "the old group survived");
    assert!(group_members(pid).is_empty());

    let second = dev.wait_for_body(api, "/pid", REBUILD, |b| b.contains(' '));
    let (pid, helper) = pids(&second);
    let stopping = Instant::now();
    let status = dev.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", dev.output());
    assert!(stopping.elapsed() >= Duration::from_millis(700));
    assert!(!alive(pid) && !alive(helper), "a process outlived dev");
    assert!(group_members(pid).is_empty(), "{:?}", group_members(pid));
    dev.wait_for_output("[dev] stopping: SIGTERM received", REBUILD);
}

#[test]
fn a_manifest_edit_during_dev_reloads_the_model_it_holds() {
    // `dev` keeps the workspace model between builds: the app's environment comes from it,
    // so a stale model would keep serving the old value (same binary, "not restarted").
    let mut dev = Dev::start("manifest", &["api"], |fixture| {
        fixture.replace(
            "apps/api/src/main.rs",
            "\"hello v1\".to_string()",
            "std::env::var(\"GREETING\").unwrap_or_else(|_| \"hello v1\".to_string())",
        );
    });
    let api = dev.api_port;
    dev.wait_for_body(api, "/v1/greeting", FIRST_BUILD, |b| b == "hello v1");
    let pid = dev.pid(api);

    dev.fixture.replace(
        "apps/api/Cargo.toml",
        "health_path = \"/health\"",
        "health_path = \"/health\"\nenv = { GREETING = \"hello from Cargo.toml\" }",
    );
    dev.wait_for_body(api, "/v1/greeting", REBUILD, |b| {
        b == "hello from Cargo.toml"
    });
    assert_ne!(dev.pid(api), pid);
    dev.wait_for_output("changed: apps/api/Cargo.toml -> rebuilding api\n", REBUILD);
    assert!(dev.terminate(Duration::from_secs(20)).success());
}

#[test]
fn an_edit_during_a_build_queues_one_follow_up_build_that_serves_it() {
    // A build script that reruns on every edit of main.rs and takes a second: the second
    // edit lands while the first one's build runs.
    let mut dev = Dev::start("during", &["api"], |fixture| {
        fixture.write(
            "apps/api/build.rs",
            "fn main() {\n    println!(\"cargo:rerun-if-changed=src/main.rs\");\n    \
             std::thread::sleep(std::time::Duration::from_secs(1));\n}\n",
        );
    });
    let api = dev.api_port;
    dev.wait_for_body(api, "/v1/greeting", FIRST_BUILD, |b| b == "hello v1");
    dev.wait_for_output("watching for changes", REBUILD);
    let builds = |dev: &Dev| dev.output().matches("[dev] building api").count();
    let before = builds(&dev);

    dev.fixture
        .replace("apps/api/src/main.rs", "\"hello v1\"", "\"hello v2\"");
    let deadline = Instant::now() + REBUILD;
    while builds(&dev) == before {
        assert!(Instant::now() < deadline, "no rebuild:\n{}", dev.output());
        std::thread::sleep(Duration::from_millis(10));
    }
    dev.fixture
        .replace("apps/api/src/main.rs", "\"hello v2\"", "\"hello v3\"");
    dev.wait_for_output(
        "changed: apps/api/src/main.rs (during a build): one follow-up build of api queued\n",
        REBUILD,
    );
    dev.wait_for_body(api, "/v1/greeting", REBUILD, |b| b == "hello v3");
    // The first build, then one follow-up; nothing after it.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(builds(&dev), before + 2, "{}", dev.output());
    assert!(dev.terminate(Duration::from_secs(20)).success());
}

fn pids(body: &str) -> (u32, u32) {
    let mut parts = body.split_whitespace().map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

/// `GET path` on 127.0.0.1:port: status and body.
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// `pid`'s `/proc/<pid>/stat` fields after the command name.
fn stat(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// Running (not a zombie).
fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|fields| fields[0] != "Z")
}

/// Live processes whose process group is `group`.
fn group_members(group: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            stat(pid).is_some_and(|fields| fields[0] != "Z" && fields[2] == group.to_string())
        })
        .collect()
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status();
}
