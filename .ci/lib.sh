# Shared functions for `.ci/install-tools` and the group scripts in `.ci/tools.d/`.
# Everything installs into `target/ci-tools/` (npm packages, a Python venv, links in `bin/`),
# except Debian packages, which go to the system. Every function is idempotent and quick when
# its tool is already there, so a developer can run `bash .ci/install-tools` at any time.
# Tests find a tool on PATH or in `target/ci-tools/bin` (testkit::tool); a missing tool fails
# the test that needs it, it is never skipped.

CI_TOOLS="${CI_TOOLS:-$(pwd)/target/ci-tools}"
CI_TOOLS_BIN="$CI_TOOLS/bin"
mkdir -p "$CI_TOOLS_BIN"

log() { printf '==> %s\n' "$*" >&2; }

# apt_install PACKAGE...: installs the Debian packages that are not installed yet.
apt_install() {
    local missing=()
    local package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$package")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt (a second checkout installing at the same time) instead of failing.
    local wait=(-o DPkg::Lock::Timeout=600)
    if ! "${sudo[@]}" apt-get "${wait[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        "${sudo[@]}" apt-get "${wait[@]}" update -qq
        "${sudo[@]}" apt-get "${wait[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# npm_install PACKAGE@VERSION...: installs into target/ci-tools/npm (node_modules there).
npm_install() {
    local dir="$CI_TOOLS/npm"
    mkdir -p "$dir"
    local missing=()
    local spec name
    for spec in "$@"; do
        name="${spec%@*}"
        [ -f "$dir/node_modules/$name/package.json" ] || missing+=("$spec")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "npm install ${missing[*]}"
    [ -f "$dir/package.json" ] || echo '{"private":true}' >"$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "${missing[@]}" >/dev/null)
}

# pip_install REQUIREMENT...: installs into the venv target/ci-tools/venv.
pip_install() {
    local venv="$CI_TOOLS/venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    local missing=()
    local spec name
    for spec in "$@"; do
        name="${spec%%[=<>]*}"
        "$venv/bin/python" -m pip show -q "$name" >/dev/null 2>&1 || missing+=("$spec")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "pip install ${missing[*]}"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}"
}

# link_tool NAME PATH: makes PATH available as target/ci-tools/bin/NAME.
link_tool() {
    ln -sf "$2" "$CI_TOOLS_BIN/$1"
}

# require NAME...: fails unless every NAME is on PATH or in target/ci-tools/bin.
require() {
    local name
    for name in "$@"; do
        PATH="$CI_TOOLS_BIN:$PATH" command -v "$name" >/dev/null \
            || { echo "error: tool '$name' is missing after installation" >&2; return 1; }
    done
}
