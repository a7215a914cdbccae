//! The container features on this repository with the real tools: the generated files are
//! current, lint- and schema-clean and snapshotted; the Dockerfile skeleton and `prune` pass
//! `cargo metadata --locked --offline --filter-platform`; the `api` image (built through the engine) is accepted
//! by umoci and skopeo, is reproducible and cached, runs under podman as non-root and answers
//! `/health`, and pushes to a real registry on loopback; the prebuilt Dockerfile builds offline.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use service_kit::testing::http_get;
use testkit::servers::free_port;
use xtask_container::generate::{generated_files, skeleton};
use xtask_container::image::{BuiltImage, ImageOptions, build_image};
use xtask_container::sync::{FIX_COMMAND, docker_set, rust_version};
use xtask_engine::Location;
use xtask_engine::generated::{SyncMode, sync};
use xtask_engine::report::{ReportMode, Reporter};

fn root() -> PathBuf {
    testkit::workspace_root()
}

fn location() -> Location {
    Location {
        manifest_path: Some(root().join("Cargo.toml")),
        directory: None,
    }
}

fn workspace() -> &'static xtask_model::Workspace {
    static WORKSPACE: OnceLock<xtask_model::Workspace> = OnceLock::new();
    WORKSPACE.get_or_init(|| xtask_engine::load_workspace(&location()).unwrap())
}

fn api_options() -> ImageOptions {
    ImageOptions {
        location: location(),
        app: "api".into(),
        tag: None,
        base: None,
        push: None,
        jobs: 2,
    }
}

/// The api image, built once per test process through the engine (cached across runs).
fn api_image() -> &'static BuiltImage {
    static IMAGE: OnceLock<BuiltImage> = OnceLock::new();
    IMAGE.get_or_init(|| build_image(&api_options(), &Reporter::new(ReportMode::Plain)).unwrap())
}

fn run(command: &mut Command) -> Output {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("failed to run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// podman with private storage (removed with the temp dir) and the project's containers.conf.
fn podman(storage: &Path) -> Command {
    let mut command = Command::new(testkit::tool("podman"));
    command
        .arg("--root")
        .arg(storage.join("root"))
        .arg("--runroot")
        .arg(storage.join("run"))
        .args(["--storage-driver", "vfs"])
        .env(
            "CONTAINERS_CONF",
            testkit::tools_dir().join("containers.conf"),
        );
    command
}

/// Kills and reaps a child process, and runs a cleanup command, when dropped.
struct Guard {
    child: Option<Child>,
    cleanup: Option<Command>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut cleanup) = self.cleanup.take() {
            let _ = cleanup.stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for_http(addr: std::net::SocketAddr, path: &str, status: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = http_get(addr, path);
        if let Ok(response) = &seen
            && response.status == status
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} on {addr} did not answer {status} within {timeout:?}: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---- generated files --------------------------------------------------------------------

#[test]
fn generated_files_are_current() {
    let files = generated_files(
        workspace(),
        &rust_version(&root().join("Cargo.toml")).unwrap(),
    );
    let drift = sync(&root(), &docker_set(files), SyncMode::Check).unwrap();
    assert!(drift.is_clean(), "{}", drift.drift_message(FIX_COMMAND));
}

#[test]
fn generated_files_snapshots() {
    for file in generated_files(workspace(), "1.89") {
        let name = file.path.replace('/', "__");
        insta::assert_snapshot!(name, file.contents);
    }
}

#[test]
fn hadolint_reports_nothing_on_the_dockerfiles() {
    let files = generated_files(workspace(), "1.89");
    let dockerfiles: Vec<&str> = files
        .iter()
        .filter(|f| f.path.contains("Dockerfile"))
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(dockerfiles.len(), 4, "{dockerfiles:?}");
    for dockerfile in dockerfiles {
        let output = run(Command::new(testkit::tool("hadolint"))
            .arg(root().join(dockerfile))
            .current_dir(root()));
        assert!(
            output.stdout.is_empty(),
            "{dockerfile}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

#[test]
fn compose_validates_against_the_compose_spec_schema() {
    run(Command::new(testkit::tool("check-jsonschema"))
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(root().join("compose.yaml")));
    // And the schema check can fail: a wrong type is rejected.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("compose.yaml");
    std::fs::write(&bad, "services:\n  api:\n    restart: [1]\n").unwrap();
    let output = Command::new(testkit::tool("check-jsonschema"))
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
}

/// The Dockerfile's dependency stage (manifests, lockfile, stubs) is a workspace cargo accepts
/// as locked, offline, for the target the Dockerfile builds: `--filter-platform` as `prune`
/// does, since a registry that `cargo build` filled holds no wasm- or windows-only sources
/// (`--locked` still checks every platform's lockfile entries).
#[test]
fn the_dockerfile_skeleton_is_a_locked_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let (manifests, stubs) = skeleton(workspace());
    // As the Dockerfile does: the root manifest and lockfile, every member manifest, the stubs.
    let root_files = ["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    for file in manifests.iter().chain(root_files.iter()) {
        let to = dir.path().join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root().join(file), to).unwrap();
    }
    for stub in stubs {
        let to = dir.path().join(&stub.path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, stub.contents).unwrap();
    }
    run(Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--locked",
            "--offline",
            "--filter-platform",
            xtask_container::generate::STATIC_TARGET,
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(dir.path().join("Cargo.toml")));
}

#[test]
fn prune_writes_a_verified_minimal_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pruned");
    let code = xtask_container::prune(
        &xtask_container::PruneOptions {
            location: location(),
            app: "api".into(),
            out: out.clone(),
        },
        &Reporter::new(ReportMode::Plain),
    )
    .unwrap()
    .exit_code;
    assert_eq!(code, 0);
    let output = run(Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--locked",
            "--offline",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(out.join("Cargo.toml")));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut members: Vec<&str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    members.sort();
    assert_eq!(members, vec!["api", "service-kit"]);
    let lock = std::fs::read_to_string(out.join("Cargo.lock")).unwrap();
    assert!(lock.contains("name = \"axum\""));
    assert!(
        !lock.contains("name = \"ureq\""),
        "the lockfile kept the tool's dependencies"
    );
    // A second prune into the same, now non-empty, directory is refused; nothing is lost.
    let error = xtask_container::prune(
        &xtask_container::PruneOptions {
            location: location(),
            app: "api".into(),
            out: out.clone(),
        },
        &Reporter::new(ReportMode::Plain),
    )
    .unwrap_err();
    assert!(error.to_string().contains("is not empty"), "{error}");
}

// ---- the image ---------------------------------------------------------------------------

#[test]
fn the_image_is_cached_reproducible_and_recorded() {
    let first = api_image();
    let again = build_image(&api_options(), &Reporter::new(ReportMode::Plain)).unwrap();
    assert!(
        again.cache_hit,
        "an unchanged app did not come from the cache"
    );
    assert_eq!(again.record.digest, first.record.digest);

    // Assembling again from the same binary gives byte-identical blobs.
    let workspace = workspace();
    let app = xtask_container::generate::apps(workspace)
        .into_iter()
        .find(|a| a.package.name == "api")
        .unwrap();
    let bytes = std::fs::read(&first.binary).unwrap();
    let spec = xtask_container::image::image_spec(workspace, app, &api_options(), bytes).unwrap();
    let one = xtask_container::oci::assemble(&spec).unwrap();
    let two = xtask_container::oci::assemble(&spec).unwrap();
    assert_eq!(one.blobs, two.blobs);
    assert_eq!(one.manifest_digest, first.record.digest);

    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&first.record_path).unwrap()).unwrap();
    assert_eq!(record["app"], "api");
    assert_eq!(
        record["tag"],
        workspace.packages[workspace.package_index("api").unwrap()].version
    );
    assert!(record["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(record["pushed"].is_boolean());
}

#[test]
fn umoci_and_skopeo_accept_the_image() {
    let image = api_image();
    let tag = &image.record.tag;
    let dir = tempfile::tempdir().unwrap();
    // umoci checks every digest and diff_id.
    run(Command::new(testkit::tool("umoci"))
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{tag}", image.layout.display()))
        .arg(dir.path().join("bundle")));
    let binary = dir.path().join("bundle/rootfs/app/api");
    assert_eq!(
        std::fs::read(&binary).unwrap(),
        std::fs::read(&image.binary).unwrap()
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("bundle/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["process"]["user"]["uid"], 65532);

    let inspect = run(Command::new(testkit::tool("skopeo"))
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:{tag}", image.layout.display())));
    let config: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["Entrypoint"][0], "/app/api");
    assert!(config["config"]["ExposedPorts"]["8080/tcp"].is_object());
    let inspect = run(Command::new(testkit::tool("skopeo"))
        .arg("inspect")
        .arg(format!("docker-archive:{}", image.archive.display())));
    let docker: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(docker["Labels"]["org.opencontainers.image.title"], "api");
    assert!(docker["Labels"]["org.opencontainers.image.revision"].is_string());
}

#[test]
fn podman_runs_the_api_image_as_non_root_and_it_answers_health() {
    let image = api_image();
    let storage = tempfile::tempdir().unwrap();
    let port = free_port();
    let name = format!("xtask-api-test-{port}");
    let output = run(podman(storage.path())
        .args(["run", "-d", "--network=host", "--name", &name])
        .args(["-e", &format!("PORT={port}"), "-e", "BIND_ADDR=127.0.0.1"])
        .arg(format!(
            "oci:{}:{}",
            image.layout.display(),
            image.record.tag
        )));
    let _guard = Guard {
        child: None,
        cleanup: Some({
            let mut c = podman(storage.path());
            c.args(["rm", "-f", "-t", "0", &name]);
            c
        }),
    };
    assert!(!output.stdout.is_empty());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_http(addr, "/health", 200, Duration::from_secs(20));
    let pid = run(podman(storage.path()).args(["inspect", "--format", "{{.State.Pid}}", &name]));
    let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|uid| uid == "65532"),
        "{uid_line}"
    );
    // The image's own health check command works inside the container.
    run(podman(storage.path()).args(["exec", &name, "/app/api", "--health-check"]));
    // And the smoke check `deploy` runs passes against the container: readiness, health,
    // the metrics the alerts query, and the api's declared requests.
    let config = workspace()
        .packages
        .iter()
        .find(|p| p.name == "api")
        .and_then(|p| p.app.clone())
        .unwrap();
    assert!(!config.smoke.is_empty());
    let report = xtask_smoke::check(
        &[xtask_smoke::SmokeTarget {
            app: "api".into(),
            base_url: format!("http://{addr}"),
            config,
        }],
        &xtask_smoke::SmokeSettings::default(),
    );
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.results.len(), 5, "{}", report.render());
}

#[test]
fn the_prebuilt_dockerfile_builds_offline_with_podman() {
    let image = api_image();
    let context = tempfile::tempdir().unwrap();
    let relative = "target/x86_64-unknown-linux-gnu/release/api";
    std::fs::create_dir_all(context.path().join(relative).parent().unwrap()).unwrap();
    std::fs::copy(&image.binary, context.path().join(relative)).unwrap();
    let storage = tempfile::tempdir().unwrap();
    run(podman(storage.path())
        .args([
            "build",
            "--network=none",
            "--pull=never",
            "-q",
            "-t",
            "api-prebuilt:test",
            "-f",
        ])
        .arg(root().join("apps/api/Dockerfile.prebuilt"))
        .arg(context.path()));
    let user = run(podman(storage.path()).args([
        "image",
        "inspect",
        "--format",
        "{{.Config.User}}",
        "api-prebuilt:test",
    ]));
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "65532:65532");
}

#[test]
fn push_to_a_real_registry_skips_existing_blobs_and_skopeo_sees_the_digest() {
    let image = api_image();
    let server = testkit::servers::docker_registry();
    let port = server.port;
    let registry = format!("127.0.0.1:{port}/team");
    let target = xtask_container::push::PushTarget::parse(&registry, "api").unwrap();
    let reporter = Reporter::new(ReportMode::Plain);
    let credentials = xtask_container::push::Credentials::default();
    let first = xtask_container::push::push_layout(
        &image.layout,
        &image.record.tag,
        &target,
        &credentials,
        &reporter,
    )
    .unwrap();
    assert_eq!(first.digest, image.record.digest);
    assert_eq!((first.uploaded, first.skipped), (2, 0));
    let second = xtask_container::push::push_layout(
        &image.layout,
        &image.record.tag,
        &target,
        &credentials,
        &reporter,
    )
    .unwrap();
    assert_eq!((second.uploaded, second.skipped), (0, 2));
    assert_eq!(second.digest, first.digest);

    let inspect = run(Command::new(testkit::tool("skopeo"))
        .args(["inspect", "--tls-verify=false"])
        .arg(format!(
            "docker://127.0.0.1:{port}/team/api:{}",
            image.record.tag
        )));
    let inspected: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspected["Digest"], first.digest);
}
