//! The remote cache against real servers on 127.0.0.1: the open-source Turborepo remote cache
//! (npm `turborepo-remote-cache`) and nginx with WebDAV speaking the Bazel HTTP cache protocol.
//! "Machine A" and "machine B" are two copies of the fixture workspace with their own local
//! caches and target dirs. Failures (wrong token, a server stopped mid-run, 500s, tampered
//! artifacts, wrong signatures) must end in a warning, a miss where needed, and a good build.

mod support;

use std::process::Command;

use support::{Fixture, TaskRun};
use testkit::servers::{self, Nginx, Server};

const TOKEN: &str = "s3cr3t-token-for-tests";
const KEY: &str = "signature-key-of-at-least-32-bytes!!";

fn turbo_env(server: &Server, token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TURBO_API", server.url()),
        ("TURBO_TOKEN", token.to_string()),
        ("TURBO_TEAM", "xtask-tests".to_string()),
    ]
}

fn bazel_env(server: &Server) -> Vec<(&'static str, String)> {
    vec![
        ("XTASK_REMOTE_CACHE_URL", server.url()),
        ("XTASK_REMOTE_CACHE_PROTOCOL", "bazel".to_string()),
    ]
}

/// A server of `protocol` (`turbo`: turborepo-remote-cache; `bazel`: nginx WebDAV) and the
/// environment that points the tool at it.
fn server_of(protocol: &str) -> (Server, Vec<(&'static str, String)>) {
    if protocol == "turbo" {
        let server = servers::turborepo_remote_cache(TOKEN, None);
        let env = turbo_env(&server, TOKEN);
        (server, env)
    } else {
        let server = servers::nginx(Nginx::BazelCache);
        let env = bazel_env(&server);
        (server, env)
    }
}

/// A turborepo-remote-cache server, its environment, and the `basic` fixture built once
/// against it ([`seed`]): the start of every fresh-machine test.
fn seeded_turbo() -> (Server, Vec<(&'static str, String)>, Fixture) {
    let (server, env) = server_of("turbo");
    let fixture = Fixture::new("basic");
    seed(&fixture, &with(&env, &[]));
    (server, env, fixture)
}

fn with<'a>(
    base: &'a [(&'static str, String)],
    extra: &'a [(&'static str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    base.iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(extra.iter().copied())
        .collect()
}

fn build(fixture: &Fixture, env: &[(&str, &str)]) -> TaskRun {
    let run = fixture.run_env(&["build"], env);
    run.assert_code(0);
    run
}

fn cargo_builds(fixture: &Fixture) -> Vec<String> {
    fixture
        .take_cargo_calls()
        .into_iter()
        .filter(|call| call.starts_with("build"))
        .collect()
}

/// Builds `fixture` against the server of `env` and checks that every entry reached it: the
/// three build entries and their packages' cargo units (the fixture has no registry crate, so
/// there is no registry layer). A failed upload would make the next run miss.
fn seed(fixture: &Fixture, env: &[(&str, &str)]) -> TaskRun {
    let run = build(fixture, env);
    let remote = run.summary.remote.as_ref().expect("remote totals");
    assert_eq!(
        (remote.uploaded, remote.upload_failed),
        (6, 0),
        "{}",
        run.output
    );
    run
}

/// Runs the fixture's `target/debug/app` and checks it is the fixture's binary.
fn assert_app_says_84(fixture: &Fixture) {
    let output = Command::new(fixture.path("target/debug/app"))
        .output()
        .expect("run the app binary");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "app says 84\n");
}

/// Machine A builds and uploads; machine B (empty cache, no target/) restores every task from
/// the server without running cargo build, and its restored binary runs.
fn machine_b_restores_what_machine_a_built(env: &[(&str, &str)], server: &Server) {
    let a = Fixture::new("basic");
    let run = seed(&a, env);
    assert!(!server.stored_files().is_empty());
    assert!(run.summary.tasks.iter().all(|t| !t.remote_hit));

    let b = Fixture::new("basic");
    assert!(!b.exists("target"));
    let run = build(&b, env);
    assert_eq!(run.summary.totals.hits, 3, "{}", run.output);
    // The summary (and the report beside it) says where each hit came from.
    assert!(
        run.summary
            .tasks
            .iter()
            .all(|t| t.status == "hit" && t.remote_hit),
        "{:?}",
        run.summary.tasks
    );
    let remote = run.summary.remote.as_ref().expect("remote totals");
    assert_eq!((remote.hits, remote.uploaded), (3, 0), "{}", run.output);
    assert!(remote.bytes_downloaded > 0);
    assert_eq!(cargo_builds(&b), Vec::<String>::new());
    assert!(run.output.warnings().is_empty(), "{}", run.output);
    assert_app_says_84(&b);
    // Nothing secret in what the user sees.
    assert!(!format!("{}", run.output).contains(TOKEN));
    // Imported on the first run: local hits from then on.
    let run = build(&b, env);
    assert!(run.summary.tasks.iter().all(|t| !t.remote_hit));
}

#[test]
fn turborepo_server_shares_a_build_between_machines() {
    let server = servers::turborepo_remote_cache(TOKEN, Some(KEY));
    let env = turbo_env(&server, TOKEN);
    machine_b_restores_what_machine_a_built(
        &with(&env, &[("TURBO_REMOTE_CACHE_SIGNATURE_KEY", KEY)]),
        &server,
    );
    // Signed uploads: the server stored a tag beside every artifact.
    let files = server.stored_files();
    let tags = files.iter().filter(|f| f.ends_with(".tag")).count();
    assert_eq!(tags * 2, files.len(), "{files:?}");
}

#[test]
fn nginx_webdav_bazel_cache_shares_a_build_between_machines() {
    let server = servers::nginx(Nginx::BazelCache);
    machine_b_restores_what_machine_a_built(&with(&bazel_env(&server), &[]), &server);
    let files = server.stored_files();
    // 3 entries, 3 package units entries and a last-run record for each under ac/, and each
    // machine's `cargo metadata` record (their workspaces are at different paths, which the
    // record's key holds); the archives and logs under cas/.
    assert_eq!(
        files.iter().filter(|f| f.starts_with("ac/")).count(),
        14,
        "{files:?}"
    );
    // Blobs are content-addressed: identical ones (e.g. empty logs) are stored once.
    assert!(
        files.iter().filter(|f| f.starts_with("cas/")).count() >= 2,
        "{files:?}"
    );
}

/// The workspace crates cargo compiled in `target/debug` (dev builds compile workspace crates
/// incrementally, registry crates never): their `incremental/` directories.
fn compiled_workspace_crates(fixture: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture.path("target/debug/incremental"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    name.rsplit_once('-')
                        .map(|(crate_name, _)| crate_name.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.dedup();
    names
}

/// A fresh CI machine (no `target/`, no local cache, at the same path: CI checks out to a fixed
/// one) with a warm remote cache and a one-line edit in the leaf `app`: the cargo units of what
/// did not change come from the server, so cargo compiles `app` alone, and the binary is the
/// edited one. With the units off (`XTASK_UNIT_LAYERS=0`), cargo compiles the whole closure.
#[test]
fn a_fresh_machine_compiles_only_the_edited_crate() {
    let (_server, env, fixture) = seeded_turbo();
    for (n, (layers, compiled)) in [("0", vec!["app", "core_lib", "util"]), ("1", vec!["app"])]
        .into_iter()
        .enumerate()
    {
        fixture.become_fresh_machine();
        fixture.append("apps/app/src/main.rs", &format!("// edit {n}\n"));
        let run = build(&fixture, &with(&env, &[("XTASK_UNIT_LAYERS", layers)]));
        assert_eq!(
            run.summary.statuses(),
            support::statuses(&[
                ("app:build", "miss"),
                ("core-lib:build", "hit"),
                ("util:build", "hit"),
            ]),
            "{}",
            run.output
        );
        assert!(run.output.warnings().is_empty(), "{}", run.output);
        assert_eq!(
            compiled_workspace_crates(&fixture),
            compiled,
            "XTASK_UNIT_LAYERS={layers}\n{}",
            run.output
        );
        // One request per hit: the hits' units came inside their task artifacts (a separate
        // fetch of each would make 4 hits). The misses: `app`, and with the units on the 8
        // registry layer shards (the fixture has no registry crate: none was stored).
        let remote = run.summary.remote.as_ref().expect("remote totals");
        let misses = if layers == "1" { 9 } else { 1 };
        assert_eq!((remote.hits, remote.misses), (2, misses), "{}", run.output);
        // The staging directories are gone.
        let staging = fixture.path("target/xtask/units-staging");
        assert!(
            std::fs::read_dir(&staging).map_or(true, |mut dir| dir.next().is_none()),
            "{} is not empty",
            staging.display()
        );
        assert_app_says_84(&fixture);
    }
}

/// A fresh machine where every task hits: cargo does not run, so no unit is placed. The units
/// come inside the hits' artifacts, but are placed during the lookup only once a task of their
/// cargo call has missed; nothing else is fetched (the registry layer is not asked for).
#[test]
fn a_fresh_machine_where_every_task_hits_places_no_units() {
    let (_server, env, fixture) = seeded_turbo();
    fixture.become_fresh_machine();
    let run = build(&fixture, &with(&env, &[]));
    assert_eq!(
        run.summary.statuses(),
        support::statuses(&[
            ("app:build", "hit"),
            ("core-lib:build", "hit"),
            ("util:build", "hit"),
        ]),
        "{}",
        run.output
    );
    assert!(run.output.warnings().is_empty(), "{}", run.output);
    let remote = run.summary.remote.as_ref().expect("remote totals");
    assert_eq!((remote.hits, remote.misses), (3, 0), "{}", run.output);
    assert!(
        !fixture.path("target/debug/.fingerprint").exists(),
        "units were placed for a run that did not call cargo\n{}",
        run.output
    );
    assert_app_says_84(&fixture);
}

/// How many of the cargo calls are `cargo SUBCOMMAND`.
fn count_calls(calls: &[String], subcommand: &str) -> usize {
    calls
        .iter()
        .filter(|call| call.split(' ').next() == Some(subcommand))
        .count()
}

/// A fresh machine takes `cargo metadata`'s result from the record the seeding run shared
/// through the remote cache (both protocols), while nothing in its key changed: cargo runs only
/// to build. A record altered on the server is not used (cargo metadata runs, the build is
/// right). After a manifest edit the key differs: cargo metadata runs again and the model
/// follows the edit.
#[test]
fn a_fresh_machine_takes_cargo_metadatas_result_from_the_remote_cache() {
    for protocol in ["turbo", "bazel"] {
        let (server, env) = server_of(protocol);
        let env = with(&env, &[]);
        let fixture = Fixture::new("basic");
        seed(&fixture, &env);
        assert_eq!(count_calls(&fixture.take_cargo_calls(), "metadata"), 1);

        fixture.become_fresh_machine();
        fixture.append("apps/app/src/main.rs", "// edit\n");
        let run = build(&fixture, &env);
        assert_eq!(run.summary.totals.ran, 1, "{protocol}: {}", run.output);
        assert!(
            run.output.warnings().is_empty(),
            "{protocol}: {}",
            run.output
        );
        let calls = fixture.take_cargo_calls();
        assert_eq!(count_calls(&calls, "metadata"), 0, "{protocol}: {calls:?}");
        assert_eq!(count_calls(&calls, "build"), 1, "{protocol}: {calls:?}");
        assert_app_says_84(&fixture);

        assert_eq!(alter_metadata_records(&server), 1, "{protocol}");
        fixture.become_fresh_machine();
        build(&fixture, &env);
        assert_eq!(
            count_calls(&fixture.take_cargo_calls(), "metadata"),
            1,
            "{protocol}"
        );
        assert_app_says_84(&fixture);

        fixture.become_fresh_machine();
        fixture.append("apps/app/Cargo.toml", "\n[features]\nloud = []\n");
        let run = build(&fixture, &env);
        assert_eq!(
            count_calls(&fixture.take_cargo_calls(), "metadata"),
            1,
            "{protocol}"
        );
        let app = run.summary.tasks.iter().find(|t| t.task_id == "app:build");
        assert_eq!(
            app.map(|t| t.status.as_str()),
            Some("miss"),
            "{protocol}: {}",
            run.output
        );
        let graph = fixture.xtask(&["graph", "--format", "json"]);
        assert!(graph.stdout.contains("\"loud\""), "{}", graph.stdout);
    }
}

/// Changes a package's version in the `cargo metadata` JSON of every shared metadata record on
/// the server (`<sha256 hex>\n<record>`: as stored by Turborepo's server, or in the body of a
/// Bazel action-cache envelope); how many it changed.
fn alter_metadata_records(server: &Server) -> usize {
    // A package's version, same length: still a valid record and a valid model, only wrong.
    let alter = |body: &mut String| {
        let is_record = body.as_bytes().get(64) == Some(&b'\n')
            && body[..64].bytes().all(|b| b.is_ascii_hexdigit());
        let metadata = body.find("}\n").map(|header_end| header_end + 2);
        match metadata.filter(|_| is_record) {
            Some(start) => {
                let at = start
                    + body[start..]
                        .find("\"version\":\"0.1.0\"")
                        .expect("a version");
                body.replace_range(at..at + 17, "\"version\":\"0.1.9\"");
                true
            }
            None => false,
        }
    };
    let mut altered = 0;
    for file in server.stored_files() {
        let path = server.storage.join(&file);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut body = text.clone();
        if alter(&mut body) {
            std::fs::write(&path, body).unwrap();
            altered += 1;
        } else if let Ok(mut envelope) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(mut inner) = envelope["body"].as_str().map(str::to_owned)
            && alter(&mut inner)
        {
            envelope["body"] = inner.into();
            std::fs::write(&path, envelope.to_string()).unwrap();
            altered += 1;
        }
    }
    altered
}

/// CI's usual pair on a fresh machine, `build` then `test`: the test call's units entries hold
/// the libraries the build call restored a moment before, beside the test harnesses it lacks.
/// Only the missing units are written (`unpack_fresh` with a filter), and they must be whole:
/// cargo compiles nothing for `test` but the edited `app`, and every test passes.
#[test]
fn a_fresh_machine_tests_after_building_and_compiles_only_the_edited_crate() {
    let server = servers::turborepo_remote_cache(TOKEN, None);
    let env = turbo_env(&server, TOKEN);
    let env = with(&env, &[]);
    let fixture = Fixture::new("basic");
    build(&fixture, &env);
    fixture.run_env(&["test"], &env).assert_code(0);
    fixture.become_fresh_machine();
    fixture.append("apps/app/src/main.rs", "// edit\n");
    build(&fixture, &env);
    assert_eq!(compiled_workspace_crates(&fixture), ["app"]);
    fixture.remove_dir("target/debug/incremental");
    let run = fixture.run_env(&["test"], &env);
    run.assert_code(0);
    assert_eq!(
        run.summary.statuses(),
        support::statuses(&[
            ("app:test", "miss"),
            ("core-lib:test", "hit"),
            ("util:test", "hit"),
        ]),
        "{}",
        run.output
    );
    assert!(run.output.warnings().is_empty(), "{}", run.output);
    assert_eq!(
        compiled_workspace_crates(&fixture),
        ["app"],
        "{}",
        run.output
    );
}

/// A binary that did not change on a fresh CI machine, beside an edit elsewhere in the call:
/// its package units entry holds no second copy of the executable (cargo's `deps/tool-H` is a
/// hard link of the task's `debug/tool`), and the restore links the task's restored output
/// back, so cargo neither compiles nor links `tool` again. `Cargo.lock` changed in between
/// (the first build added `tool` to it): the hits' units are still found.
#[test]
fn a_hit_binarys_executable_is_stored_once_and_linked_back_on_a_fresh_machine() {
    let server = servers::turborepo_remote_cache(TOKEN, None);
    let env = turbo_env(&server, TOKEN);
    let fixture = Fixture::new("basic");
    fixture.write(
        "apps/tool/Cargo.toml",
        "[package]\nname = \"tool\"\nversion.workspace = true\nedition.workspace = true\n\n\
         [dependencies]\ncore-lib = { path = \"../../crates/core\" }\n",
    );
    fixture.write(
        "apps/tool/src/main.rs",
        "fn main() {\n    println!(\"tool says {}\", core_lib::answer());\n}\n",
    );
    // Cargo adds the new member to `Cargo.lock` during this build: the package units' key
    // leaves the lock file to the task hashes, so the change does not orphan them.
    build(&fixture, &with(&env, &[]));
    let links = package_units_links(&fixture, "debug/tool");
    assert_eq!(links.len(), 1, "{links:?}");
    let (entry, link) = &links[0];
    let path = link["path"].as_str().unwrap();
    assert!(path.starts_with("debug/deps/tool-"), "{link}");
    let executable = std::fs::read(fixture.path("target/debug/tool")).unwrap();
    assert_eq!(
        link["sha256"].as_str(),
        Some(xtask_util::sha256_hex(&executable).as_str())
    );
    let outputs = entry["outputs"].as_array().unwrap();
    assert!(
        !outputs.iter().any(|o| o["path"] == path),
        "the units archive holds the executable again: {entry}"
    );
    assert!(
        outputs.iter().any(|o| o["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("debug/.fingerprint/tool-"))),
        "{entry}"
    );

    fixture.become_fresh_machine();
    fixture.append("crates/util/src/lib.rs", "// edit\n");
    let run = build(&fixture, &with(&env, &[]));
    assert_eq!(
        run.summary.statuses(),
        support::statuses(&[
            ("app:build", "miss"),
            ("core-lib:build", "hit"),
            ("tool:build", "hit"),
            ("util:build", "miss"),
        ]),
        "{}",
        run.output
    );
    assert!(run.output.warnings().is_empty(), "{}", run.output);
    assert_eq!(
        compiled_workspace_crates(&fixture),
        ["app", "util"],
        "{}",
        run.output
    );
    // Cargo's unit file and the uplifted name are one file, as after cargo's own build.
    let unit = std::fs::metadata(fixture.path(&format!("target/{path}"))).unwrap();
    let uplifted = std::fs::metadata(fixture.path("target/debug/tool")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(unit.ino(), uplifted.ino());
    let output = Command::new(fixture.path("target/debug/tool"))
        .output()
        .expect("run the tool binary");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "tool says 42\n");
}

/// The package units entries in the fixture's local cache with a link from `from`, each with
/// the link.
fn package_units_links(
    fixture: &Fixture,
    from: &str,
) -> Vec<(serde_json::Value, serde_json::Value)> {
    let mut found = Vec::new();
    for entry in fixture.cache_entries() {
        let links = entry["manifest"]["links"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for link in links {
            if link["from"] == from {
                found.push((entry.clone(), link));
            }
        }
    }
    found
}

#[test]
fn a_wrong_token_warns_once_and_the_build_succeeds_locally() {
    let server = servers::turborepo_remote_cache(TOKEN, None);
    let fixture = Fixture::new("basic");
    let wrong = "wrong-token-value-xyz";
    let run = build(&fixture, &with(&turbo_env(&server, wrong), &[]));
    let warnings = run.output.warnings();
    assert_eq!(warnings.len(), 1, "{}", run.output);
    assert!(warnings[0].contains("401"), "{}", warnings[0]);
    assert!(warnings[0].contains(&server.url()), "{}", warnings[0]);
    let remote = run.summary.remote.as_ref().expect("remote totals");
    assert!(remote.disabled.is_some());
    assert_eq!(remote.uploaded, 0);
    assert_eq!(run.summary.totals.ran, 3);
    assert!(!format!("{}", run.output).contains(wrong));
    assert!(server.stored_files().is_empty());
}

#[test]
fn a_server_stopped_mid_run_warns_and_the_build_succeeds() {
    let mut server = servers::turborepo_remote_cache(TOKEN, None);
    let fixture = Fixture::new("basic");
    let pid = server_pid(&server);
    // core-lib's gen runs first (the others depend on it) and kills the server, after the
    // lookups and before any upload.
    fixture.append(
        "crates/core/Cargo.toml",
        &format!(
            "\n[package.metadata.xtask.tasks.gen]\ncommand = [\"sh\", \"-c\", \"kill {pid}; sleep 0.2; mkdir -p out && echo 1 > out/size.txt\"]\n"
        ),
    );
    let run = fixture.run_env(&["run", "gen"], &with(&turbo_env(&server, TOKEN), &[]));
    run.assert_code(0);
    assert_eq!(run.summary.totals.ran, 3);
    let warnings = run.output.warnings();
    assert_eq!(warnings.len(), 1, "{}", run.output);
    assert!(
        warnings[0].contains(&server.url()) && warnings[0].contains("cannot reach the server"),
        "{}",
        warnings[0]
    );
    let remote = run.summary.remote.as_ref().expect("remote totals");
    assert_eq!(remote.uploaded, 0);
    assert_eq!(remote.upload_failed, 3);
    server.stop();
}

/// The pid of the server process, from /proc (the guard owns the child).
fn server_pid(server: &Server) -> u32 {
    let needle = format!("PORT={}", server.port);
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(entry) = entry else { continue };
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            return pid;
        }
    }
    panic!("no process with {needle}");
}

#[test]
fn a_server_answering_500_warns_once_and_the_build_succeeds() {
    let server = servers::nginx(Nginx::Error500);
    let fixture = Fixture::new("basic");
    let run = build(&fixture, &with(&bazel_env(&server), &[]));
    let warnings = run.output.warnings();
    assert_eq!(warnings.len(), 1, "{}", run.output);
    assert!(
        warnings[0].contains("500") && warnings[0].contains(&server.url()),
        "{}",
        warnings[0]
    );
    assert_eq!(run.summary.totals.ran, 3);
}

#[test]
fn a_tampered_artifact_is_a_miss_with_a_warning() {
    for protocol in ["turbo", "bazel"] {
        let (server, env) = server_of(protocol);
        let env = with(&env, &[]);
        build(&Fixture::new("basic"), &env);
        // Flip one byte in the middle of every stored outputs archive: CAS blobs (Bazel), or
        // the task's own archive inside each artifact (Turborepo; artifacts start with their
        // `entry.json` member, the archive is the second), not the small JSON records.
        for file in server.stored_files() {
            let path = server.storage.join(&file);
            let mut bytes = std::fs::read(&path).unwrap();
            let middle = if protocol == "turbo" {
                bytes
                    .starts_with(b"entry.json")
                    .then(|| tar_member_middle(&bytes, 1))
                    .flatten()
            } else {
                (file.starts_with("cas/") && !bytes.is_empty()).then_some(bytes.len() / 2)
            };
            if let Some(middle) = middle {
                bytes[middle] ^= 0x55;
                std::fs::write(&path, bytes).unwrap();
            }
        }
        let b = Fixture::new("basic");
        let run = build(&b, &env);
        let remote = run.summary.remote.as_ref().expect("remote totals");
        assert_eq!(remote.hits, 0, "{protocol}: {}", run.output);
        assert_eq!(remote.rejected, 3, "{protocol}: {}", run.output);
        assert!(
            run.output.warnings().iter().all(|w| w.contains("rejected")),
            "{protocol}: {}",
            run.output
        );
        // Whatever was rejected was rebuilt; the binary is the real one.
        assert_app_says_84(&b);
    }
}

/// The offset of the middle byte of member `index` of a tar archive, if it has that many and
/// that one is not empty.
fn tar_member_middle(bytes: &[u8], index: usize) -> Option<usize> {
    let mut archive = tar::Archive::new(bytes);
    let member = archive.entries().ok()?.nth(index)?.ok()?;
    let size = usize::try_from(member.size()).ok()?;
    let start = usize::try_from(member.raw_file_position()).ok()?;
    (size > 0).then_some(start + size / 2)
}

/// A companion (a task's units inside its artifact) that fails verification is left out, never
/// used: the units then come under their own key, and the fresh machine still compiles only the
/// edited crate, without a warning (the task entry itself was fine).
#[test]
fn a_tampered_companion_is_left_out_and_the_units_come_by_their_own_key() {
    let server = servers::turborepo_remote_cache(TOKEN, None);
    let env = turbo_env(&server, TOKEN);
    let env = with(&env, &[]);
    let fixture = Fixture::new("basic");
    build(&fixture, &env);
    let mut tampered = 0;
    for file in server.stored_files() {
        let path = server.storage.join(&file);
        let mut bytes = std::fs::read(&path).unwrap();
        // The fifth member: `companion/archive.tar.zst`.
        if let Some(middle) = tar_member_middle(&bytes, 4) {
            bytes[middle] ^= 0x55;
            std::fs::write(&path, bytes).unwrap();
            tampered += 1;
        }
    }
    assert_eq!(tampered, 3, "every task artifact carries its units");
    fixture.become_fresh_machine();
    fixture.append("apps/app/src/main.rs", "// edit\n");
    let run = build(&fixture, &env);
    assert!(run.output.warnings().is_empty(), "{}", run.output);
    // The 2 hits' artifacts, then their 2 units entries by their own keys.
    let remote = run.summary.remote.as_ref().expect("remote totals");
    assert_eq!(remote.hits, 4, "{}", run.output);
    assert_eq!(
        compiled_workspace_crates(&fixture),
        vec!["app"],
        "{}",
        run.output
    );
    assert_app_says_84(&fixture);
}

#[test]
fn a_wrong_or_missing_signature_is_a_miss_with_a_warning() {
    // Uploaded unsigned, read with a key: every artifact lacks a tag. (A server started with a
    // signature key refuses unsigned artifacts itself, so this one has none.)
    let server = servers::turborepo_remote_cache(TOKEN, None);
    let env = turbo_env(&server, TOKEN);
    build(&Fixture::new("basic"), &with(&env, &[]));
    let run = build(
        &Fixture::new("basic"),
        &with(&env, &[("TURBO_REMOTE_CACHE_SIGNATURE_KEY", KEY)]),
    );
    let remote = run.summary.remote.as_ref().expect("remote totals");
    assert_eq!((remote.hits, remote.rejected), (0, 3), "{}", run.output);
    assert!(
        run.output
            .warnings()
            .iter()
            .all(|w| w.contains("not signed")),
        "{}",
        run.output
    );
    // Signed with another key.
    let server = servers::turborepo_remote_cache(TOKEN, Some(KEY));
    let env = turbo_env(&server, TOKEN);
    build(
        &Fixture::new("basic"),
        &with(
            &env,
            &[(
                "TURBO_REMOTE_CACHE_SIGNATURE_KEY",
                "another-key-another-key-another-key",
            )],
        ),
    );
    let run = build(
        &Fixture::new("basic"),
        &with(&env, &[("TURBO_REMOTE_CACHE_SIGNATURE_KEY", KEY)]),
    );
    let remote = run.summary.remote.as_ref().expect("remote totals");
    assert_eq!((remote.hits, remote.rejected), (0, 3), "{}", run.output);
    assert!(
        run.output
            .warnings()
            .iter()
            .all(|w| w.contains("signature does not match")),
        "{}",
        run.output
    );
    assert!(!format!("{}", run.output).contains(KEY));
}

#[test]
fn read_only_mode_never_uploads_but_reads() {
    let server = servers::turborepo_remote_cache(TOKEN, None);
    let env = turbo_env(&server, TOKEN);
    let run = build(
        &Fixture::new("basic"),
        &with(&env, &[("XTASK_REMOTE_CACHE_MODE", "read-only")]),
    );
    assert_eq!(run.summary.remote.as_ref().unwrap().uploaded, 0);
    assert!(
        server.stored_files().is_empty(),
        "{:?}",
        server.stored_files()
    );
    // TURBO_CACHE's remote part works the same way.
    build(
        &Fixture::new("basic"),
        &with(&env, &[("TURBO_CACHE", "local:rw,remote:r")]),
    );
    assert!(
        server.stored_files().is_empty(),
        "{:?}",
        server.stored_files()
    );
    // A read-write machine uploads; a read-only one then reads.
    build(&Fixture::new("basic"), &with(&env, &[]));
    let count = server.stored_files().len();
    let run = build(
        &Fixture::new("basic"),
        &with(&env, &[("XTASK_REMOTE_CACHE_MODE", "read-only")]),
    );
    assert_eq!(run.summary.remote.as_ref().unwrap().hits, 3);
    assert_eq!(server.stored_files().len(), count);
}

#[test]
fn why_remote_names_the_inputs_that_differ_from_the_last_upload() {
    let server = servers::nginx(Nginx::BazelCache);
    let env = bazel_env(&server);
    let env = with(&env, &[]);
    build(&Fixture::new("basic"), &env);
    let b = Fixture::new("basic");
    let same = b.xtask_env(&["why", "app:build", "--remote"], &env);
    same.assert_code(0);
    assert!(same.stdout.contains("a remote cache hit"), "{same}");
    b.append("crates/core/src/lib.rs", "\n// changed on machine B\n");
    let changed = b.xtask_env(&["why", "app:build", "--remote"], &env);
    changed.assert_code(0);
    assert!(
        changed
            .stdout
            .contains("differs from the last upload to the remote cache"),
        "{changed}"
    );
    assert!(
        changed.stdout.contains("dependency changed: core-lib"),
        "{changed}"
    );
    // The file is named by the task whose own input it is.
    let changed = b.xtask_env(&["why", "core-lib:build", "--remote"], &env);
    changed.assert_code(0);
    assert!(
        changed.stdout.contains("crates/core/src/lib.rs"),
        "{changed}"
    );
    let none = Fixture::new("basic").xtask(&["why", "app:build", "--remote"]);
    none.assert_code(3);
    assert!(
        none.stderr.contains("no remote cache is configured"),
        "{none}"
    );
}

#[test]
fn cache_doctor_says_what_is_wrong() {
    let server = servers::turborepo_remote_cache(TOKEN, Some(KEY));
    let fixture = Fixture::new("basic");
    let env = turbo_env(&server, TOKEN);
    let good = fixture.xtask_env(
        &["cache", "doctor"],
        &with(&env, &[("TURBO_REMOTE_CACHE_SIGNATURE_KEY", KEY)]),
    );
    good.assert_code(0);
    assert!(good.stdout.contains("[ok] write"), "{good}");
    assert!(good.stdout.contains("signature verified"), "{good}");
    assert!(
        !good.stdout.contains(TOKEN) && !good.stdout.contains(KEY),
        "{good}"
    );

    let wrong = fixture.xtask_env(
        &["cache", "doctor"],
        &with(&turbo_env(&server, "nope"), &[]),
    );
    wrong.assert_code(4);
    assert!(
        wrong.stdout.contains("[FAIL]") && wrong.stdout.contains("401"),
        "{wrong}"
    );

    let down = format!("http://127.0.0.1:{}", servers::free_port());
    let unreachable = fixture.xtask_env(
        &["cache", "doctor"],
        &[
            ("TURBO_API", down.as_str()),
            ("TURBO_TOKEN", TOKEN),
            ("TURBO_TEAM", "t"),
        ],
    );
    unreachable.assert_code(4);
    assert!(
        unreachable.stdout.contains("connection refused"),
        "{unreachable}"
    );

    let bad = fixture.xtask_env(
        &["cache", "doctor"],
        &[
            ("TURBO_API", down.as_str()),
            ("XTASK_REMOTE_CACHE_MODE", "sometimes"),
        ],
    );
    bad.assert_code(3);
    assert!(bad.stderr.contains("XTASK_REMOTE_CACHE_MODE"), "{bad}");
}

/// `build --shard K/3` on three machines at once, against one real turborepo-remote-cache:
/// every shard passes, each package is built by exactly one shard, and what each uploaded is
/// its whole, correct share: a fresh machine running the same shard gets every task from the
/// server without running cargo, and the restored binary runs. (A cargo task's key includes
/// the packages its cargo invocation selects, for feature unification, so a shard's entries
/// serve that shard's later runs, not an unsharded build.)
#[test]
fn three_shards_at_once_share_one_turborepo_server() {
    let server = servers::turborepo_remote_cache(TOKEN, None);
    let env = turbo_env(&server, TOKEN);
    let env = with(&env, &[]);
    let shard_build = |machine: &Fixture, index: usize| {
        let shard = format!("{index}/3");
        let run = machine.run_env(&["build", "--shard", &shard], &env);
        run.assert_code(0);
        run
    };
    let machines: Vec<Fixture> = (0..3).map(|_| Fixture::new("basic")).collect();
    let runs: Vec<TaskRun> = std::thread::scope(|scope| {
        let shards: Vec<_> = machines
            .iter()
            .enumerate()
            .map(|(index, machine)| scope.spawn(move || shard_build(machine, index + 1)))
            .collect();
        shards
            .into_iter()
            .map(|shard| shard.join().expect("a shard's thread"))
            .collect()
    });
    // How many shards built each task.
    let mut built: std::collections::BTreeMap<String, usize> = Default::default();
    for run in &runs {
        assert!(run.output.warnings().is_empty(), "{}", run.output);
        for task in &run.summary.tasks {
            assert_eq!(task.status, "miss", "{}", task.task_id);
            *built.entry(task.task_id.clone()).or_default() += 1;
        }
    }
    assert_eq!(
        built.into_iter().collect::<Vec<_>>(),
        [
            ("app:build".to_string(), 1),
            ("core-lib:build".to_string(), 1),
            ("util:build".to_string(), 1)
        ]
    );

    let mut apps_run = 0;
    for (index, first) in runs.iter().enumerate() {
        let again = Fixture::new("basic");
        let run = shard_build(&again, index + 1);
        let ids = |run: &TaskRun| -> Vec<String> {
            run.summary
                .tasks
                .iter()
                .map(|t| t.task_id.clone())
                .collect()
        };
        assert_eq!(ids(&run), ids(first), "shard {}/3", index + 1);
        assert!(
            run.summary
                .tasks
                .iter()
                .all(|t| t.status == "hit" && t.remote_hit),
            "shard {}/3: {:?}",
            index + 1,
            run.summary.tasks
        );
        assert_eq!(cargo_builds(&again), Vec::<String>::new());
        if again.exists("target/debug/app") {
            assert_app_says_84(&again);
            apps_run += 1;
        }
    }
    assert_eq!(apps_run, 1, "one shard builds the app");
}
