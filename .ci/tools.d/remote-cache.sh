# Remote cache servers for the remote-cache tests (crates/xtask-remote, xtask/tests/remote.rs):
# the open-source Turborepo remote cache (API v8), nginx with WebDAV (the Bazel HTTP cache
# protocol), and turbo itself (to check that our artifact signatures match its scheme).
apt_install nginx
npm_install turborepo-remote-cache@2.12.0 turbo@2.11.11
link_tool nginx /usr/sbin/nginx
link_tool turborepo-remote-cache "$CI_TOOLS/npm/node_modules/turborepo-remote-cache/dist/cli.js"
link_tool turbo "$CI_TOOLS/npm/node_modules/.bin/turbo"
require nginx turborepo-remote-cache turbo node
