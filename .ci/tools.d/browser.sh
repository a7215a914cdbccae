# A real browser for the HTML pages (`--summarize`'s report, `graph --format html`;
# xtask/tests/report.rs): Debian's `chromium`, driven by npm's `playwright-core` (no browser
# download: the tests launch /usr/bin/chromium through `executablePath`). `playwright-check`
# runs a script with node, resolving `playwright-core` from target/ci-tools/npm.
apt_install chromium
npm_install playwright-core@1.65.1
link_tool chromium /usr/bin/chromium
cat >"$CI_TOOLS_BIN/playwright-check" <<SCRIPT
#!/usr/bin/env bash
# playwright-check SCRIPT [ARG]...: node SCRIPT with playwright-core resolvable.
NODE_PATH="$CI_TOOLS/npm/node_modules" exec node "\$@"
SCRIPT
chmod +x "$CI_TOOLS_BIN/playwright-check"
require chromium node playwright-check
[ -f "$CI_TOOLS/npm/node_modules/playwright-core/package.json" ] \
    || { echo "error: playwright-core is missing after installation" >&2; return 1; }
