//! The pages and the trace from small runs and graphs: the data each page embeds (snapshots),
//! the page's structure (what its script needs, nothing loaded from anywhere), and the trace.

use xtask_report::{
    GraphData, GraphEdge, GraphNode, RunData, TaskData, TaskStatus, Why, chrome_trace,
    render_graph_html, render_run_html,
};

fn task(id: &str, status: TaskStatus, start_ms: u64, duration_ms: u64) -> TaskData {
    let (package, task) = id.split_once(':').expect("package:task");
    TaskData {
        id: id.to_string(),
        package: package.to_string(),
        task: task.to_string(),
        hash: format!("{:0<64}", package.len()),
        status,
        start_ms,
        duration_ms,
        ..TaskData::default()
    }
}

fn sample_run() -> RunData {
    let mut lib = task("lib:build", TaskStatus::Miss, 120, 800);
    lib.why = Some(Why {
        compared_with: Some("ab".repeat(32)),
        changes: vec!["input changed: crates/lib/src/lib.rs".into()],
    });
    let mut app = task("app:build", TaskStatus::Miss, 900, 400);
    app.builds_against = vec!["lib".into()];
    app.why = Some(Why {
        compared_with: Some("cd".repeat(32)),
        changes: vec!["workspace dependency changed: lib".into()],
    });
    let mut cached = task("docs:gen", TaskStatus::RemoteHit, 110, 5);
    cached.saved_ms = 2500;
    let mut broken = task("app:gen", TaskStatus::Failed, 1300, 50);
    broken.dependencies = vec!["app:build".into(), "docs:gen".into()];
    broken.why = Some(Why {
        compared_with: None,
        changes: vec!["no earlier cached run to compare with".into()],
    });
    let mut skipped = task("app:package", TaskStatus::Skipped, 1350, 0);
    skipped.dependencies = vec!["app:gen".into()];
    RunData {
        title: "cargo xtask build <script>".into(),
        started: "2024-05-01T12:00:00Z".into(),
        duration_ms: 1400,
        plan_ms: 100,
        saved_ms: 2500,
        cargo_ms: 1180,
        tasks: vec![cached, lib, app, broken, skipped],
    }
}

fn sample_graph() -> GraphData {
    let node = |id: &str, affected: Option<&str>| GraphNode {
        id: id.into(),
        details: vec![format!("path crates/{id}")],
        affected: affected.map(str::to_string),
    };
    let edge = |from, to, label: Option<&str>, orders| GraphEdge {
        from,
        to,
        label: label.map(str::to_string),
        orders,
    };
    GraphData {
        title: "package graph".into(),
        nodes: vec![
            node("core", Some("changed: crates/core/src/lib.rs")),
            node("lib", Some("depends on core")),
            node("app", Some("depends on lib")),
            node("tools", None),
        ],
        edges: vec![
            edge(2, 1, None, true),
            edge(1, 0, None, true),
            edge(2, 3, Some("build"), true),
            edge(0, 3, Some("dev"), false),
        ],
        affected_base: Some("main".into()),
    }
}

/// The JSON data block of a page.
fn data_block(html: &str) -> serde_json::Value {
    let start_tag = "<script type=\"application/json\" id=\"xtask-data\">";
    let start = html.find(start_tag).expect("the page has a data block") + start_tag.len();
    let end = start
        + html[start..]
            .find("</script>")
            .expect("the data block ends");
    serde_json::from_str(&html[start..end]).expect("the data block is JSON")
}

/// What every page must be: one file that loads nothing and has the elements its script uses.
fn assert_self_contained(html: &str, ids: &[&str]) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("content=\"default-src 'none';"), "no CSP");
    for scheme in [
        "http:", "https:", "//cdn", "src=", "href=", "@import", "url(http",
    ] {
        assert!(!html.contains(scheme), "the page refers to `{scheme}`");
    }
    for id in ids {
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "the page has no element `{id}`"
        );
    }
    assert_eq!(
        html.matches("<script").count(),
        2,
        "the data and the script"
    );
}

#[test]
fn run_report_embeds_every_task_the_critical_path_and_why() {
    let html = render_run_html(&sample_run());
    assert_self_contained(
        &html,
        &[
            "title", "stats", "timeline", "detail", "critical", "why", "filter",
        ],
    );
    assert!(html.contains("<title>cargo xtask build &lt;script&gt; — run report</title>"));
    assert!(
        !html.contains("build <script>"),
        "the title in the data is escaped"
    );
    insta::assert_json_snapshot!("run_report_data", data_block(&html));
}

#[test]
fn graph_page_embeds_the_laid_out_nodes_and_edges() {
    let html = render_graph_html(&sample_graph());
    assert_self_contained(&html, &["title", "canvas", "detail", "search", "names"]);
    insta::assert_json_snapshot!("graph_page_data", data_block(&html));
}

#[test]
fn chrome_trace_has_a_complete_event_per_task_on_lanes_that_do_not_overlap() {
    let text = chrome_trace(&sample_run());
    let trace: serde_json::Value = serde_json::from_str(&text).expect("the trace is JSON");
    insta::assert_json_snapshot!("chrome_trace", trace);
    let events = trace["traceEvents"].as_array().unwrap();
    let tasks: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] != "xtask")
        .collect();
    assert_eq!(tasks.len(), sample_run().tasks.len());
}

#[test]
fn the_same_data_gives_the_same_bytes() {
    assert_eq!(
        render_run_html(&sample_run()),
        render_run_html(&sample_run())
    );
    assert_eq!(
        render_graph_html(&sample_graph()),
        render_graph_html(&sample_graph())
    );
}
