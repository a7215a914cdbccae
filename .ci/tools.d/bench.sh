# `cargo xtask bench runner` (crates/xtask-bench/src/runner.rs): turbo's native binary from npm
# (the tool compared against), GNU time for peak memory, npm for the synthetic trees'
# package-lock (workspace links only, nothing downloaded), python3 for gen_monorepo.py.
apt_install time
npm_install turbo@2.11.11
link_tool turbo "$CI_TOOLS/npm/node_modules/.bin/turbo"
require turbo node npm python3
