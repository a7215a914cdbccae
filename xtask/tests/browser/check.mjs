// Opens pages from disk in headless Chromium (Debian's /usr/bin/chromium) through
// playwright-core, as xtask/tests/report.rs asks: for each page, fails on any console error,
// page error or request that is not the file itself, runs its steps (click, fill, press) and
// checks the visible text they lead to, measures the open time, and takes a screenshot.
//
// Usage: node check.mjs PLAN.json (run through target/ci-tools/bin/playwright-check, which
// sets NODE_PATH to the playwright-core installed by `.ci/tools.d/browser.sh`).
// PLAN: {"chromium": PATH, "pages": [{"name", "file", "height" (of the viewport), "steps": [{"click"|"fill"|"press",
// "value", "expect": {SELECTOR: [TEXT...]}}], "screenshot": PATH}]}
// Prints one JSON object: {"pages": [{"name", "load_ms", "rendered_ms", "wall_ms", "problems"}]};
// exits 1 when any page has a problem.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));
const browser = await chromium.launch({
  executablePath: plan.chromium || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const results = [];
try {
  for (const spec of plan.pages) results.push(await checkPage(spec));
} finally {
  await browser.close();
}
console.log(JSON.stringify({ pages: results }, null, 2));
process.exit(results.every((r) => r.problems.length === 0) ? 0 : 1);

async function checkPage(spec) {
  const problems = [];
  const url = pathToFileURL(spec.file).href;
  const context = await browser.newContext({ viewport: { width: 1280, height: spec.height || 860 }, deviceScaleFactor: 1 });
  // Nothing but the page itself may load: anything else is aborted and reported.
  await context.route("**/*", (route) => {
    const requested = route.request().url();
    if (requested === url) return route.continue();
    problems.push("request: " + requested);
    return route.abort();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("console", (message) => {
    if (message.type() === "error") problems.push("console error: " + message.text());
  });
  page.on("pageerror", (error) => problems.push("page error: " + error.message));
  const before = Date.now();
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("body[data-ready=true]");
  const wall_ms = Date.now() - before;
  const timing = await page.evaluate(() => {
    const navigation = performance.getEntriesByType("navigation")[0];
    const rendered = performance.getEntriesByName("xtask-rendered")[0];
    return { load_ms: navigation.loadEventEnd, rendered_ms: rendered ? rendered.startTime : -1 };
  });
  for (const step of spec.steps || []) {
    try {
      await runStep(page, step, problems);
    } catch (error) {
      problems.push(`step ${JSON.stringify(step)} failed: ${error.message.split("\n")[0]}`);
    }
  }
  if (spec.screenshot) await page.screenshot({ path: spec.screenshot });
  await context.close();
  return { name: spec.name, ...timing, wall_ms, problems };
}

async function runStep(page, step, problems) {
  if (step.click) await page.locator(step.click).first().click();
  if (step.fill) await page.locator(step.fill).fill(step.value);
  if (step.press) await page.keyboard.press(step.press);
  for (const [selector, texts] of Object.entries(step.expect || {})) {
    const target = page.locator(selector).first();
    if (!(await target.isVisible())) {
      problems.push(`${selector} is not visible after ${JSON.stringify(step)}`);
      continue;
    }
    const shown = await target.innerText();
    for (const text of texts) {
      if (!shown.includes(text)) {
        problems.push(`${selector} does not show "${text}" after ${JSON.stringify(step)}; it shows:\n${shown}`);
      }
    }
  }
}
