//! The one list of checkov checks skipped for `k8s/`, each with its reason. It is written to
//! `k8s/.checkov.yaml` (`checkov --config-file k8s/.checkov.yaml`), which the tests use too.

/// `(check id, why it does not apply)`. Keep it short: every other check must pass.
pub const SKIPPED_CHECKS: [(&str, &str); 2] = [
    (
        "CKV_K8S_35",
        "secrets as files rather than environment variables: the apps read their settings from \
         the environment (service-kit); each container gets only the keys its app declares in \
         `secrets`, one `secretKeyRef` each, never a whole Secret",
    ),
    (
        "CKV_K8S_43",
        "image should use a digest: committed manifests name the release tag \
         (<registry>/<app>:<version>) because a digest is only known once an image is built; \
         `cargo xtask deploy` pins every built image by digest in the plan it applies",
    ),
];

/// `k8s/.checkov.yaml`.
pub(crate) fn config_file(header: &str) -> String {
    let mut text = format!("# {header}\n# Checks skipped for k8s/, and why:\n");
    for (id, reason) in SKIPPED_CHECKS {
        text.push_str(&format!("# - {id}: {reason}\n"));
    }
    text.push_str("skip-check:\n");
    for (id, _) in SKIPPED_CHECKS {
        text.push_str(&format!("- {id}\n"));
    }
    text
}
