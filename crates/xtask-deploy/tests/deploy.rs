//! The deploy plan: built images pinned by digest from `target/xtask/images/<app>.json`
//! (ko-style), the committed tag otherwise, the rendered manifests, and the kubectl steps.

mod support;

use support::*;
use xtask_deploy::Environment;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn built_images_are_pinned_by_digest_in_the_rendered_plan() {
    let dir = fixture("shop");
    let root = dir.path();
    write_sets(root, &sets(root));
    let workspace = workspace(root);
    let project = xtask_deploy::project(&workspace).unwrap();
    let images = workspace.target_dir.join("xtask/images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(
        images.join("front.json"),
        format!(r#"{{"app":"front","repository":"registry.example.test/acme/front","tag":"abc123","digest":"{DIGEST}","pushed":true}}"#),
    )
    .unwrap();

    let plan = xtask_deploy::plan(
        root,
        &workspace.target_dir,
        &project,
        Environment::Production,
    )
    .unwrap();
    let manifests = std::fs::read_to_string(root.join(&plan.manifests)).unwrap();
    assert!(
        manifests.contains(&format!("image: registry.example.test/acme/front@{DIGEST}")),
        "{manifests}"
    );
    assert!(
        manifests.contains("image: registry.example.test/acme/back:0.4.0"),
        "{manifests}"
    );
    assert!(
        manifests.contains("namespace: shop-production"),
        "{manifests}"
    );
    assert_eq!(plan.deployments, ["back", "front"]);
    let rendered = plan.render().replace(&root.display().to_string(), "[ROOT]");
    insta::assert_snapshot!("production_plan", rendered);

    // A record of an image that was not pushed cannot be pulled by the cluster: not pinned.
    std::fs::write(
        images.join("front.json"),
        format!(r#"{{"app":"front","repository":"registry.example.test/acme/front","tag":"abc123","digest":"{DIGEST}","pushed":false}}"#),
    )
    .unwrap();
    let plan =
        xtask_deploy::plan(root, &workspace.target_dir, &project, Environment::Staging).unwrap();
    let manifests = std::fs::read_to_string(root.join(&plan.manifests)).unwrap();
    assert!(!manifests.contains(DIGEST), "{manifests}");
    assert!(
        plan.render().contains("says the image was not pushed"),
        "{}",
        plan.render()
    );
}

#[test]
fn bad_image_records_and_missing_dev_secrets_are_clear_errors() {
    let dir = fixture("shop");
    let root = dir.path();
    write_sets(root, &sets(root));
    let workspace = workspace(root);
    let project = xtask_deploy::project(&workspace).unwrap();

    let error =
        xtask_deploy::plan(root, &workspace.target_dir, &project, Environment::Dev).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("k8s/overlays/dev/front.secrets.env"),
        "{message}"
    );
    assert!(message.contains("SESSION_KEY"), "{message}");
    assert_eq!(xtask_engine::exit_code_for(&error), 3);

    let images = workspace.target_dir.join("xtask/images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(
        images.join("back.json"),
        r#"{"app":"back","repository":"r/back","tag":"t","digest":"sha256:short","pushed":true}"#,
    )
    .unwrap();
    let error = xtask_deploy::plan(root, &workspace.target_dir, &project, Environment::Staging)
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("back.json") && message.contains("`digest` must be"),
        "{message}"
    );
    assert_eq!(xtask_engine::exit_code_for(&error), 3);
}

#[test]
fn unknown_talks_to_is_a_located_configuration_error() {
    let dir = fixture("shop");
    let manifest = dir.path().join("front/Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("talks_to = [\"back\"]", "talks_to = [\"cart\"]");
    std::fs::write(&manifest, text).unwrap();
    // Checked by the model as it loads, so every command refuses it before doing anything.
    let error = xtask_engine::load_workspace(&location(dir.path())).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("front/Cargo.toml:10: `package.metadata.xtask.app.talks_to`: `cart` is not another app of the workspace (apps: back)"),
        "{message}"
    );
    assert_eq!(xtask_engine::exit_code_for(&error), 3);
}
