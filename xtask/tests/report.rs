//! The run report, the graph page and the profile, checked in a real browser: a real run on a
//! fixture (`--summarize` writes the HTML report beside its JSON, `--profile` a Chrome trace),
//! `graph --format html --affected`, and a synthetic report of 500 tasks. Headless Chromium
//! (Debian's, driven by playwright-core through `tests/browser/check.mjs`) opens each page from
//! disk and fails on any console error, page error or request; a task and a package are
//! clicked (and a package searched) and the details they show are read; each page is
//! screenshotted into `target/tmp/report-pages/` (beside the pages) (`docs/images/report.png` is the run
//! report's). The 500-task report must be under 2 MB and open in under a second.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::Fixture;
use xtask_report::{GraphData, GraphEdge, GraphNode, RunData, TaskData, TaskStatus, Why};

/// The largest report of 500 tasks allowed, in bytes.
const MAX_REPORT_BYTES: usize = 2 * 1024 * 1024;
/// The longest a page may take to open (load event, script done), in milliseconds.
const MAX_OPEN_MS: f64 = 1000.0;

#[test]
fn run_report_graph_page_and_profile_open_in_a_real_browser() {
    let playwright = testkit::tool("playwright-check");
    let chromium = testkit::tool("chromium");
    let fixture = Fixture::new("basic");
    fixture.run(&["run", "gen"]).assert_code(0);
    // Committed with the first run's outputs, so only the edit below is a change.
    fixture.git(&["init", "--quiet"]);
    fixture.git(&["add", "--all"]);
    fixture.git(&["commit", "--quiet", "--message", "fixture"]);
    fixture.append("crates/util/src/lib.rs", "// an edit\n");

    // Kept after the test (overwritten by the next run), to look at.
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-pages");
    std::fs::create_dir_all(&out).expect("create the pages dir");
    // Before the run below rewrites util's output: only the edit is a change.
    let graph = fixture.xtask(&["graph", "--format", "html", "--affected=main"]);
    graph.assert_code(0);
    let graph_page = out.join("graph.html");
    std::fs::write(&graph_page, &graph.stdout).expect("write the graph page");
    let summary = out.join("run.json");
    let trace = out.join("trace.json");
    let run = fixture.xtask(&[
        "run",
        "gen",
        &format!("--summarize={}", summary.display()),
        &format!("--profile={}", trace.display()),
    ]);
    run.assert_code(0);
    let report = out.join("run.html");
    assert!(
        run.stderr
            .contains(&format!("run report: {}", report.display())),
        "{run}"
    );
    check_summary(&read_json(&summary));
    check_trace(&read_json(&trace));

    let large = out.join("run-500.html");
    let html = xtask_report::render_run_html(&synthetic_run(500));
    std::fs::write(&large, &html).expect("write the 500-task report");
    eprintln!("500-task report: {} bytes", html.len());
    assert!(
        html.len() < MAX_REPORT_BYTES,
        "the 500-task report is {} bytes, over {MAX_REPORT_BYTES}",
        html.len()
    );

    let dev_graph = out.join("graph-dev-edge.html");
    std::fs::write(
        &dev_graph,
        xtask_report::render_graph_html(&graph_with_a_dev_edge()),
    )
    .expect("write the graph with a dev edge");

    let screenshots = &out;
    let plan = json!({
        "chromium": chromium,
        "pages": [
            {
                "name": "run report",
                "file": report,
                "height": 660,
                "steps": [
                    {
                        "click": "[data-task=\"core-lib:gen\"] .bar",
                        "expect": { "#detail": ["core-lib:gen", "hit", "Restored from the local cache."] }
                    },
                    {
                        "click": "[data-task=\"util:gen\"] .bar",
                        "expect": {
                            "#detail": ["util:gen", "miss", "Why it ran", "input changed: crates/util/src/lib.rs"],
                            "#why": ["app:gen", "dependency task changed: util:gen"],
                            "#critical": ["util:gen"]
                        }
                    }
                ],
                "screenshot": screenshots.join("report.png")
            },
            {
                "name": "graph page",
                "file": graph_page,
                "steps": [
                    {
                        "click": "[data-node=\"util\"]",
                        "expect": { "#detail": [
                            "util", "affected", "changed: crates/util/src/lib.rs",
                            "Depends on: 1 direct, 1 in all", "core-lib",
                            "Dependents: 1 direct, 1 in all", "app"
                        ] }
                    },
                    {
                        "fill": "#search", "value": "core-lib", "press": "Enter",
                        "expect": { "#detail": ["core-lib", "Dependents: 1 direct, 2 in all"] }
                    }
                ],
                "screenshot": screenshots.join("graph.png")
            },
            {
                // A dev-dependency is built for the tests of its declarer only: not
                // something app depends on (app: lib and core, not testkit), and lib's
                // dependents (app) do not depend on testkit.
                "name": "graph with a dev edge",
                "file": dev_graph,
                "steps": [
                    {
                        "click": "[data-node=\"app\"]",
                        "expect": { "#detail": ["Depends on: 1 direct, 2 in all", "lib"] }
                    },
                    {
                        "click": "[data-node=\"lib\"]",
                        "expect": { "#detail": ["Depends on: 2 direct, 2 in all", "testkit (dev)"] }
                    },
                    {
                        "click": "[data-node=\"testkit\"]",
                        "expect": { "#detail": ["Dependents: 1 direct, 1 in all", "lib (dev)"] }
                    }
                ]
            },
            {
                "name": "500-task report",
                "file": large,
                "steps": [
                    {
                        "click": "[data-task=\"crate-0250:build\"] .bar",
                        "expect": { "#detail": ["crate-0250:build", "input changed: crates/crate-0250/src/lib.rs"] }
                    },
                    {
                        "fill": "#filter", "value": "crate-0499",
                        "expect": { "#timeline": ["crate-0499:build"] }
                    },
                    {
                        "fill": "#filter", "value": "",
                        "expect": { "#timeline": ["crate-0000:build", "crate-0499:build"] }
                    }
                ],
                "screenshot": screenshots.join("report-500.png")
            }
        ]
    });
    let results = run_browser(&playwright, &plan, &out);
    for page in results["pages"].as_array().expect("pages") {
        let name = page["name"].as_str().unwrap_or_default();
        let open_ms = page["load_ms"]
            .as_f64()
            .expect("load_ms")
            .max(page["rendered_ms"].as_f64().expect("rendered_ms"));
        eprintln!("{name}: open in {open_ms:.0} ms");
        assert!(
            open_ms < MAX_OPEN_MS,
            "{name} took {open_ms} ms to open, over {MAX_OPEN_MS}"
        );
    }
    for name in ["report.png", "graph.png", "report-500.png"] {
        let png = std::fs::read(screenshots.join(name)).expect("the screenshot");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "{name} is not a PNG with content ({} bytes)",
            png.len()
        );
    }
}

/// The summary of the second run: a hit with its start, misses with why they ran.
fn check_summary(summary: &Value) {
    let tasks = summary["tasks"].as_array().expect("tasks");
    let task = |id: &str| -> &Value {
        tasks
            .iter()
            .find(|t| t["task_id"] == id)
            .unwrap_or_else(|| panic!("no task {id} in {summary:#}"))
    };
    assert_eq!(task("core-lib:gen")["status"], "hit");
    assert!(task("core-lib:gen").get("why").is_none(), "{summary:#}");
    assert_eq!(task("util:gen")["status"], "miss");
    assert_eq!(
        task("util:gen")["why"]["changes"],
        json!(["input changed: crates/util/src/lib.rs"])
    );
    assert!(task("util:gen")["why"]["compared_with"].is_string());
    assert_eq!(
        task("app:gen")["why"]["changes"],
        json!(["dependency task changed: util:gen"])
    );
    // Dependencies start after what they depend on ended.
    let start = |id: &str| task(id)["start_ms"].as_u64().expect("start_ms");
    let end = |id: &str| start(id) + task(id)["duration_ms"].as_u64().expect("duration_ms");
    assert!(start("util:gen") >= end("core-lib:gen"), "{summary:#}");
    assert!(start("app:gen") >= end("util:gen"), "{summary:#}");
    let plan_ms = summary["plan_ms"].as_u64().expect("plan_ms");
    assert!(plan_ms <= start("core-lib:gen"), "{summary:#}");
    assert!(end("app:gen") <= summary["duration_ms"].as_u64().expect("duration_ms"));
}

/// The profile: a Chrome trace with a complete event per task on lanes.
fn check_trace(trace: &Value) {
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    let mut tasks: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] != "xtask")
        .map(|e| {
            assert!(e["ts"].is_u64() && e["dur"].is_u64() && e["tid"].as_u64() > Some(0));
            e["name"].as_str().expect("name")
        })
        .collect();
    tasks.sort_unstable();
    assert_eq!(tasks, ["app:gen", "core-lib:gen", "util:gen"]);
    assert_eq!(trace["otherData"]["command"], "cargo xtask run gen");
}

/// Runs the browser check with `plan`; panics with its report when a page had a problem.
fn run_browser(playwright: &Path, plan: &Value, dir: &Path) -> Value {
    let plan_path = dir.join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).expect("write the plan");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/check.mjs");
    let output = Command::new(playwright)
        .arg(&script)
        .arg(&plan_path)
        .output()
        .expect("start playwright-check");
    let text = testkit::output_text(&output);
    assert!(output.status.success(), "the browser check failed:\n{text}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("the browser check printed no JSON ({error}):\n{text}"))
}

fn read_json(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("failed to read `{}`: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("`{}` is not JSON ({error}):\n{text}", path.display()))
}

/// app -> lib -> core, and lib's tests use testkit (-> core).
fn graph_with_a_dev_edge() -> GraphData {
    let node = |id: &str| GraphNode {
        id: id.into(),
        ..GraphNode::default()
    };
    let edge = |from, to, dev: bool| GraphEdge {
        from,
        to,
        label: dev.then(|| "dev".to_string()),
        orders: !dev,
    };
    GraphData {
        title: "package graph".into(),
        nodes: ["app", "lib", "core", "testkit"].map(node).to_vec(),
        edges: vec![
            edge(0, 1, false),
            edge(1, 2, false),
            edge(1, 3, true),
            edge(3, 2, false),
        ],
        affected_base: None,
    }
}

/// A run of `count` cargo builds over a layered workspace, as a big CI run looks: most tasks
/// ran (each with a few changed inputs), some were hits (a few remote), a few failed or were
/// skipped; two cargo jobs' worth of overlap over about ten minutes.
fn synthetic_run(count: usize) -> RunData {
    let name = |i: usize| format!("crate-{i:04}");
    let mut tasks = Vec::with_capacity(count);
    let mut clock = [2_000u64, 2_000];
    for i in 0..count {
        let duration = 200 + (i as u64 * 7919) % 2_500;
        let lane = i % 2;
        let start = clock[lane];
        clock[lane] += duration;
        let status = match i % 20 {
            0..=4 => TaskStatus::Hit,
            5 => TaskStatus::RemoteHit,
            6 => TaskStatus::Failed,
            7 => TaskStatus::Skipped,
            _ => TaskStatus::Miss,
        };
        let ran = matches!(status, TaskStatus::Miss | TaskStatus::Failed);
        let hit = matches!(status, TaskStatus::Hit | TaskStatus::RemoteHit);
        let against: Vec<String> = (1..=4)
            .filter(|k| i >= k * 3)
            .map(|k| name(i - k * 3))
            .collect();
        tasks.push(TaskData {
            id: format!("{}:build", name(i)),
            package: name(i),
            task: "build".into(),
            hash: format!("{:064x}", (i as u128 + 1) * 0x9e37_79b9_7f4a_7c15),
            status,
            start_ms: start,
            duration_ms: if hit { 3 } else { duration },
            saved_ms: if hit { duration } else { 0 },
            dependencies: Vec::new(),
            builds_against: against.clone(),
            why: ran.then(|| Why {
                compared_with: Some(format!("{:064x}", i as u128 * 31 + 7)),
                changes: std::iter::once(format!("input changed: crates/{}/src/lib.rs", name(i)))
                    .chain(
                        (0..i % 4).map(|m| {
                            format!("input changed: crates/{}/src/module_{m}.rs", name(i))
                        }),
                    )
                    .chain(
                        against
                            .first()
                            .map(|d| format!("workspace dependency changed: {d}")),
                    )
                    .collect(),
            }),
        });
    }
    RunData {
        title: "cargo xtask build".into(),
        started: "2024-05-01T12:00:00Z".into(),
        duration_ms: clock[0].max(clock[1]) + 500,
        plan_ms: 2_000,
        saved_ms: tasks.iter().map(|t| t.saved_ms).sum(),
        cargo_ms: clock[0].max(clock[1]) - 2_000,
        tasks,
    }
}
