# Monitoring tools for the generated alert rules, dashboards and smoke checks
# (crates/xtask-deploy/tests/monitoring.rs): Debian's `prometheus` package brings `prometheus`
# (a real server, started on loopback by the tests) and `promtool` (`check rules`, `test rules`).
apt_install prometheus
link_tool prometheus /usr/bin/prometheus
link_tool promtool /usr/bin/promtool
require prometheus promtool
