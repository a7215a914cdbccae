// The run report: summary, timeline (a row per task), critical path, why tasks ran, details.
const TASKS = DATA.tasks;
const STATUS_WORDS = { "hit": "hit", "remote-hit": "remote hit", "miss": "miss", "failed": "failed", "skipped": "skipped" };
const ON_CRITICAL_PATH = new Set(DATA.critical_path);
const LABEL_WIDTH = 260;
const ROW_HEIGHT = 20;
const AXIS_HEIGHT = 24;
const state = { zoom: 1, filter: "", selected: -1 };

function renderHeader() {
  document.getElementById("title").textContent = DATA.title;
  document.getElementById("subtitle").textContent =
    "started " + DATA.started + " · took " + duration(DATA.duration_ms) + " (planning " +
    duration(DATA.plan_ms) + (DATA.cargo_ms ? ", cargo calls " + duration(DATA.cargo_ms) : "") + ")";
  const c = DATA.counts;
  const stat = (value, label) => h("div", { className: "stat" }, h("b", { text: value }), h("span", { text: label }));
  document.getElementById("stats").replaceChildren(
    stat(duration(DATA.duration_ms), "wall time"),
    stat(TASKS.length, "tasks"),
    stat(c.hit + c.remote_hit, c.remote_hit ? "cache hits (" + c.remote_hit + " remote)" : "cache hits"),
    stat(c.miss + c.failed, "ran"),
    stat(c.failed, "failed"),
    stat(c.skipped, "skipped"),
    stat(duration(DATA.saved_ms), "time saved"),
    stat(duration(criticalLength()), "critical path"),
  );
  const legend = document.getElementById("legend");
  for (const [status, word] of Object.entries(STATUS_WORDS)) {
    const count = c[status.replace("-", "_")];
    legend.append(h("span", { className: "swatch s-" + status }), word + " " + count);
  }
}

function criticalLength() {
  return DATA.critical_path.reduce((sum, i) => sum + TASKS[i].duration, 0);
}

/** A step between axis ticks of about `rough` ms: 1, 2 or 5 times a power of ten. */
function tickStep(rough) {
  const power = Math.pow(10, Math.floor(Math.log10(Math.max(rough, 1))));
  for (const m of [1, 2, 5, 10]) if (m * power >= rough) return m * power;
  return 10 * power;
}

function renderTimeline() {
  const container = document.getElementById("timeline");
  const needle = state.filter.toLowerCase();
  const rows = TASKS.map((t, i) => i)
    .filter((i) => !needle || TASKS[i].id.toLowerCase().includes(needle))
    .sort((a, b) => TASKS[a].start - TASKS[b].start || a - b);
  const end = Math.max(1, DATA.duration_ms, ...TASKS.map((t) => t.start + t.duration));
  const chartWidth = Math.max(container.clientWidth - LABEL_WIDTH - 24, 320) * state.zoom;
  const scale = chartWidth / end;
  const width = LABEL_WIDTH + chartWidth + 16;
  const height = rows.length * ROW_HEIGHT + 4;
  const step = tickStep(end / Math.max(chartWidth / 90, 1));
  const ticks = [];
  for (let t = 0; t <= end; t += step) ticks.push(LABEL_WIDTH + t * scale);
  // The axis stays on top while the rows scroll under it.
  const head = [`<svg class="axis-head" width="${width}" height="${AXIS_HEIGHT}" aria-hidden="true"><g class="axis">`];
  ticks.forEach((x, k) => {
    head.push(`<line x1="${x}" x2="${x}" y1="${AXIS_HEIGHT - 6}" y2="${AXIS_HEIGHT}"/><text x="${x + 3}" y="${AXIS_HEIGHT - 10}">${esc(duration(k * step))}</text>`);
  });
  head.push("</g></svg>");
  const parts = [`<svg width="${width}" height="${height}" role="img" aria-label="timeline of every task">`];
  parts.push(`<rect class="plan" x="${LABEL_WIDTH}" y="0" width="${DATA.plan_ms * scale}" height="${height}"/>`);
  if (DATA.plan_ms * scale > 40) {
    parts.push(`<text class="plan-label" x="${LABEL_WIDTH + 4}" y="12">planning</text>`);
  }
  parts.push('<g class="axis">');
  for (const x of ticks) parts.push(`<line x1="${x}" x2="${x}" y1="0" y2="${height}"/>`);
  parts.push("</g>");
  rows.forEach((i, row) => {
    const t = TASKS[i];
    const y = row * ROW_HEIGHT;
    const critical = ON_CRITICAL_PATH.has(i) ? " critical" : "";
    const selected = i === state.selected ? " selected" : "";
    const label = t.id.length > 38 ? t.id.slice(0, 37) + "…" : t.id;
    const tip = `${t.id}: ${STATUS_WORDS[t.status]}, ${duration(t.duration)} from ${duration(t.start)}`;
    const barWidth = Math.max(t.duration * scale, 2);
    // An outline would hide the colour of a narrow bar: its bold label marks it instead.
    const outlined = critical && barWidth >= 6 ? " critical" : "";
    parts.push(
      `<g class="row${critical}${selected}" data-index="${i}" data-task="${esc(t.id)}">` +
      `<rect class="stripe" x="0" y="${y}" width="${width}" height="${ROW_HEIGHT}"/>` +
      `<text class="label" x="${LABEL_WIDTH - 8}" y="${y + 14}" text-anchor="end">${esc(label)}</text>` +
      `<rect class="bar s-${t.status}${outlined}" x="${LABEL_WIDTH + t.start * scale}" y="${y + 3}" width="${barWidth}" height="${ROW_HEIGHT - 6}" rx="2"><title>${esc(tip)}</title></rect>` +
      "</g>");
  });
  parts.push("</svg>");
  container.innerHTML = head.join("") + parts.join("");
}

function taskButton(i) {
  return h("button", { className: "link", text: TASKS[i].id, onclick: () => select(i) });
}

function select(i) {
  state.selected = i;
  for (const row of document.querySelectorAll("#timeline .row")) {
    row.classList.toggle("selected", Number(row.dataset.index) === i);
  }
  renderDetail(i);
}

function whyList(why) {
  const list = h("ul");
  for (const change of why.changes) list.append(h("li", {}, h("code", { text: change })));
  return list;
}

function renderDetail(i) {
  const t = TASKS[i];
  const panel = document.getElementById("detail");
  const dependencies = t.deps && t.deps.length
    ? h("span", {}, ...t.deps.flatMap((d, k) => (k ? [", ", taskButton(d)] : [taskButton(d)])))
    : "none";
  const hit = t.status === "hit" || t.status === "remote-hit";
  panel.replaceChildren(
    h("h2", { text: "Task" }),
    h("h3", { text: t.id }),
    h("span", { className: "badge s-" + t.status, text: STATUS_WORDS[t.status] }),
    definitions([
      ["started", "at " + duration(t.start)],
      [hit ? "restored in" : "took", duration(t.duration)],
      ["saved", hit ? duration(t.saved || 0) : null],
      ["hash", h("code", { text: t.hash })],
      ["depends on", dependencies],
      ["builds against", t.builds_against ? t.builds_against.join(", ") : null],
      ["critical path", ON_CRITICAL_PATH.has(i) ? "on the critical path" : null],
    ]),
  );
  if (t.why) {
    panel.append(h("h2", { text: "Why it ran" }));
    if (t.why.compared_with) {
      panel.append(h("p", { className: "hint" }, "compared with the cached run ", h("code", { text: t.why.compared_with.slice(0, 12) })));
    }
    panel.append(whyList(t.why));
  } else if (hit) {
    panel.append(h("p", { className: "hint", text: t.status === "remote-hit" ? "Restored from the remote cache." : "Restored from the local cache." }));
  } else if (t.status === "skipped") {
    panel.append(h("p", { className: "hint", text: "Not run: a dependency failed." }));
  }
}

/** Markup of a task's name that selects it when clicked (see the delegated handlers below). */
function taskLink(i) {
  return `<button type="button" class="link" data-index="${i}">${esc(TASKS[i].id)}</button>`;
}

/** Fills `container` with the markup of `items` (each a function of its index), the first
 * `shown` of them and a button for the rest: a long run stays quick to open. */
function renderList(container, items, markup, shown) {
  const first = items.slice(0, shown).map(markup).join("");
  container.innerHTML = first;
  if (items.length > shown) {
    const more = h("button", { text: "show all " + items.length, onclick: () => { container.innerHTML = items.map(markup).join(""); } });
    container.append(more);
  }
}

const LIST_SHOWN = 50;

function renderCritical() {
  renderList(document.getElementById("critical"), DATA.critical_path,
    (i) => `<li>${taskLink(i)} ${esc(duration(TASKS[i].duration))} (${esc(STATUS_WORDS[TASKS[i].status])})</li>`, LIST_SHOWN);
  document.getElementById("critical-summary").textContent = DATA.critical_path.length
    ? "The chain of tasks that decided when the run ended: " + duration(criticalLength()) + " of its " + duration(DATA.duration_ms) + "."
    : "No task ran.";
}

function renderWhy() {
  const panel = document.getElementById("why");
  const ran = TASKS.map((t, i) => i).filter((i) => TASKS[i].why);
  if (!ran.length) {
    panel.append(h("p", { className: "hint", text: "No task ran: every task was a cache hit (or skipped)." }));
    return;
  }
  const shownChanges = 8;
  renderList(panel, ran, (i) => {
    const t = TASKS[i];
    const changes = t.why.changes.slice(0, shownChanges);
    const more = t.why.changes.length - changes.length;
    if (more > 0) changes.push("… and " + more + " more");
    return `<div class="task">${taskLink(i)} <span class="badge s-${t.status}">${esc(STATUS_WORDS[t.status])}</span><ul>` +
      changes.map((c) => `<li><code>${esc(c)}</code></li>`).join("") + "</ul></div>";
  }, LIST_SHOWN);
}

function setZoom(zoom) {
  state.zoom = Math.min(64, Math.max(1, zoom));
  renderTimeline();
}

for (const id of ["timeline", "critical", "why"]) {
  document.getElementById(id).addEventListener("click", (event) => {
    const task = event.target.closest("[data-index]");
    if (task) select(Number(task.dataset.index));
  });
}
document.getElementById("filter").addEventListener("input", (event) => {
  state.filter = event.target.value;
  renderTimeline();
});
document.getElementById("zoom-in").addEventListener("click", () => setZoom(state.zoom * 2));
document.getElementById("zoom-out").addEventListener("click", () => setZoom(state.zoom / 2));
document.getElementById("zoom-fit").addEventListener("click", () => setZoom(1));
window.addEventListener("resize", renderTimeline);

renderHeader();
renderTimeline();
renderCritical();
renderWhy();
ready();
