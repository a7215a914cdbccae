//! The CLI of the deployment artifacts: `k8s --check` and `ci generate --check` on this
//! repository, `deploy ENV --dry-run` for every environment, a bad environment name, `ci`'s
//! flags and subcommand kept apart, a failed rollout rolled back, a failed smoke check after
//! the rollouts rolling every app back, and `--rollback` (with a recording `kubectl` stand-in,
//! since no cluster can run here: `kubectl kustomize` is the real one, and `port-forward`
//! points at a stand-in app on loopback).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::{copy_dir, output_text, workspace_root};

fn xtask(args: &[&str], root: &Path, envs: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .arg("-C")
        .arg(root)
        .args(args)
        .env("CI", "true")
        .env_remove("XTASK_KUBECTL");
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().expect("run xtask")
}

#[test]
fn committed_artifacts_pass_their_checks() {
    for args in [["k8s", "--check"], ["ci", "generate"]] {
        let args: Vec<&str> = if args[0] == "ci" {
            vec!["ci", "generate", "--check"]
        } else {
            args.to_vec()
        };
        let output = xtask(&args, &workspace_root(), &[]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}:\n{}",
            output_text(&output)
        );
        assert!(
            output_text(&output).contains("files are up to date"),
            "{}",
            output_text(&output)
        );
    }
}

#[test]
fn dry_run_prints_the_plan_of_every_environment() {
    for environment in ["dev", "staging", "production"] {
        let output = xtask(
            &["deploy", environment, "--dry-run"],
            &workspace_root(),
            &[],
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
        let namespace = format!("monorepo-{environment}");
        assert!(
            stdout.starts_with(&format!(
                "deploy plan: {environment} (namespace {namespace}"
            )),
            "{stdout}"
        );
        for expected in [
            format!("manifests: target/xtask/deploy/{environment}/manifests.yaml"),
            "kubectl apply --server-side".to_string(),
            format!("kubectl rollout status deployment/api --namespace {namespace} --timeout=300s"),
            format!("kubectl rollout undo deployment/worker --namespace {namespace}"),
            "Deployment/api".to_string(),
            "Ingress/public".to_string(),
        ] {
            assert!(
                stdout.contains(&expected),
                "missing {expected:?}:\n{stdout}"
            );
        }
    }
}

#[test]
fn a_bad_environment_is_a_usage_error() {
    let output = xtask(&["deploy", "prod", "--dry-run"], &workspace_root(), &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid value 'prod'")
            && stderr.contains("[possible values: dev, staging, production]"),
        "{stderr}"
    );
}

#[test]
fn ci_flags_and_ci_generate_do_not_mix() {
    let output = xtask(&["ci", "-j", "1", "generate"], &workspace_root(), &[]);
    assert_eq!(output.status.code(), Some(2), "{}", output_text(&output));
    let help = xtask(&["ci", "--help"], &workspace_root(), &[]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("generate") && help.contains("--jobs") && help.contains("--force"),
        "{help}"
    );
}

/// A copy of the deploy fixture with its k8s/ generated and the dev Secret file written.
fn shop() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = workspace_root().join("crates/xtask-deploy/tests/fixtures/shop");
    copy_dir(&source, dir.path());
    let output = xtask(&["k8s"], dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
    std::fs::write(
        dir.path().join("k8s/overlays/dev/front.secrets.env"),
        "SESSION_KEY=dev\n",
    )
    .unwrap();
    dir
}

/// A `kubectl` that records its arguments, runs the real `kubectl kustomize`, fails
/// `rollout status` of `deployment/FAIL`, and answers `port-forward` with `app_port` (a
/// stand-in app on loopback).
fn recording_kubectl(dir: &Path, fail: &str, app_port: u16) -> (PathBuf, PathBuf) {
    let log = dir.join("kubectl.log");
    let script = dir.join("kubectl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{log}'\ncase \"$1 $2 $3\" in\n  kustomize*) exec '{real}' \"$@\" ;;\n  'rollout status deployment/{fail}') echo 'error: deployment \"{fail}\" exceeded its progress deadline' >&2; exit 1 ;;\n  port-forward*) echo 'Forwarding from 127.0.0.1:{app_port} -> 3000'; exec sleep 60 ;;\nesac\necho ok\n",
            log = log.display(),
            real = testkit::tool("kubectl").display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

/// A stand-in app on loopback for the smoke check: 200 and a body with "shop" and the
/// metrics the rules need on every path, or 500 on `/` when `healthy` is false.
fn stand_in_app(healthy: bool) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/");
            let status = if path == "/" && !healthy {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let body = "shop\nhttp_requests_total{} 1\nhttp_request_duration_seconds_bucket{le=\"+Inf\"} 1\n";
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| l.split(" /").next().unwrap_or(l).to_string())
        .collect()
}

#[test]
fn a_failed_rollout_is_rolled_back_and_fails_the_deploy() {
    let workspace = shop();
    let tools = tempfile::tempdir().unwrap();
    let (kubectl, log) = recording_kubectl(tools.path(), "front", stand_in_app(true));
    let output = xtask(
        &["deploy", "staging"],
        workspace.path(),
        &[("XTASK_KUBECTL", &kubectl)],
    );
    assert_eq!(output.status.code(), Some(1), "{}", output_text(&output));
    assert_eq!(
        calls(&log),
        [
            "kustomize",
            "apply --server-side --field-manager=cargo-xtask -f target/xtask/deploy/staging/manifests.yaml",
            "rollout status deployment/back --namespace shop-staging --timeout=300s",
            "rollout status deployment/front --namespace shop-staging --timeout=300s",
            "rollout undo deployment/front --namespace shop-staging",
            "rollout status deployment/front --namespace shop-staging --timeout=300s",
        ]
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("rollout of deployment/front failed: rolling back"),
        "{stderr}"
    );
    assert!(
        stderr.contains("deploy staging: failed (front rolled back)"),
        "{stderr}"
    );

    // And a clean rollout whose smoke check passes succeeds without any undo.
    std::fs::remove_file(&log).unwrap();
    let port = stand_in_app(true);
    let (kubectl, log) = recording_kubectl(tools.path(), "none", port);
    let output = xtask(
        &["deploy", "dev"],
        workspace.path(),
        &[("XTASK_KUBECTL", &kubectl)],
    );
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
    let recorded = calls(&log);
    assert!(!recorded.iter().any(|c| c.contains("undo")), "{recorded:?}");
    for app in ["back", "front"] {
        let forward = format!(
            "port-forward --namespace shop-dev --address 127.0.0.1 service/{app} :{}",
            if app == "back" { 9000 } else { 3000 }
        );
        assert!(recorded.contains(&forward), "{recorded:?}");
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "ok    front GET / (",
        "ok    back GET /prometheus (",
        "smoke: 7 checks, 0 failed",
        "deploy dev: smoke check passed",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?}:\n{stderr}");
    }
}

#[test]
fn a_failed_smoke_check_rolls_every_app_back_and_rollback_on_request() {
    let workspace = shop();
    let tools = tempfile::tempdir().unwrap();
    let (kubectl, log) = recording_kubectl(tools.path(), "none", stand_in_app(false));
    let output = xtask(
        &["deploy", "staging"],
        workspace.path(),
        &[("XTASK_KUBECTL", &kubectl)],
    );
    assert_eq!(output.status.code(), Some(1), "{}", output_text(&output));
    let recorded = calls(&log);
    assert_eq!(
        recorded[recorded.len() - 4..],
        [
            "rollout undo deployment/back --namespace shop-staging",
            "rollout status deployment/back --namespace shop-staging --timeout=300s",
            "rollout undo deployment/front --namespace shop-staging",
            "rollout status deployment/front --namespace shop-staging --timeout=300s",
        ]
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "FAIL  front GET /: expected 200 and body contains \"shop\", got 500: \"shop",
        "smoke: 7 checks, 1 failed",
        "deploy staging: smoke check failed: rolling back back, front",
        "deploy staging: failed; rolled back back, front to their previous revision",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?}:\n{stderr}");
    }

    // `--rollback` undoes every app's last rollout, each awaited.
    std::fs::remove_file(&log).unwrap();
    let output = xtask(
        &["deploy", "production", "--rollback"],
        workspace.path(),
        &[("XTASK_KUBECTL", &kubectl)],
    );
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
    assert_eq!(
        calls(&log),
        [
            "rollout undo deployment/back --namespace shop-production",
            "rollout status deployment/back --namespace shop-production --timeout=300s",
            "rollout undo deployment/front --namespace shop-production",
            "rollout status deployment/front --namespace shop-production --timeout=300s",
        ]
    );
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("rollback production: rolled back back, front"),
        "{}",
        output_text(&output)
    );
    // `--rollback` and `--dry-run` do not mix.
    let output = xtask(
        &["deploy", "production", "--rollback", "--dry-run"],
        workspace.path(),
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{}", output_text(&output));
}

#[test]
fn deploy_refuses_out_of_date_manifests() {
    let workspace = shop();
    let path = workspace.path().join("k8s/base/back.yaml");
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replace("maxUnavailable: 1", "maxUnavailable: 2");
    std::fs::write(&path, edited).unwrap();
    let output = xtask(&["deploy", "staging", "--dry-run"], workspace.path(), &[]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`k8s/` is out of date (k8s/base/back.yaml): run `cargo xtask k8s`"),
        "{stderr}"
    );
    // And `k8s --check` shows the diff.
    let output = xtask(&["k8s", "--check"], workspace.path(), &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        output_text(&output).contains("-  maxUnavailable: 2\n+  maxUnavailable: 1"),
        "{}",
        output_text(&output)
    );
}

#[test]
fn smoke_reports_each_check_and_exits_1_on_a_failure() {
    let workspace = shop();
    let healthy = format!("http://127.0.0.1:{}", stand_in_app(true));
    let output = xtask(
        &["smoke", "--base-url", &healthy, "--app", "front"],
        workspace.path(),
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in [
        "ok    front GET /ready (",
        "ok    front GET /health (",
        "ok    front GET /metrics (",
        "ok    front GET / (",
        "smoke: 4 checks, 0 failed\n",
    ] {
        assert!(stdout.contains(line), "missing {line:?}:\n{stdout}");
    }

    let failing = format!("http://127.0.0.1:{}", stand_in_app(false));
    let output = xtask(
        &[
            "smoke",
            "--base-url",
            &failing,
            "--app",
            "front",
            "--timeout",
            "2",
        ],
        workspace.path(),
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "{}", output_text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("smoke: 4 checks, 1 failed\n"),
        "{}",
        output_text(&output)
    );

    // An unknown app, and a base URL for several apps, are configuration errors (exit 3).
    for args in [
        vec!["smoke", "--app", "nope"],
        vec!["smoke", "--base-url", &healthy],
    ] {
        let output = xtask(&args, workspace.path(), &[]);
        assert_eq!(
            output.status.code(),
            Some(3),
            "{args:?}: {}",
            output_text(&output)
        );
    }
    let output = xtask(&["smoke", "--app", "nope"], workspace.path(), &[]);
    assert!(
        output_text(&output).contains("`nope` is not an app (apps: back, front)"),
        "{}",
        output_text(&output)
    );
}
