// The graph page: draw once from the laid-out data, then zoom, pan, search and select.
const NODES = DATA.nodes;
const EDGES = DATA.edges;
const NODE_HEIGHT = DATA.node_height;
const canvas = document.getElementById("canvas");
// Per node, the indices of its edges out (what it depends on) and in (what depends on it).
const OUT = NODES.map(() => []);
const IN = NODES.map(() => []);
EDGES.forEach(([from, to], e) => { OUT[from].push(e); IN[to].push(e); });
const view = { x: 0, y: 0, scale: 1 };
let selected = -1;

function edgeClass(label) {
  if (label.startsWith("build")) return "edge build";
  if (label.startsWith("dev")) return "edge dev";
  return "edge";
}

function edgePath(from, to) {
  const a = NODES[from];
  const b = NODES[to];
  const forward = b.x > a.x;
  const x1 = forward ? a.x + a.w : a.x;
  const x2 = forward ? b.x : b.x + b.w;
  const y1 = a.y + NODE_HEIGHT / 2;
  const y2 = b.y + NODE_HEIGHT / 2;
  const bend = Math.max(40, Math.abs(x2 - x1) / 2) * (forward ? 1 : -1);
  return `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
}

function draw() {
  const parts = ['<svg role="img" aria-label="graph"><defs>',
    '<marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto-start-reverse">',
    '<path d="M0,0 L8,4 L0,8 z" fill="#8a93a6"/></marker></defs><g id="viewport"><g id="edges">'];
  EDGES.forEach(([from, to, label], e) => {
    const tip = NODES[from].id + " depends on " + NODES[to].id + (label ? " (" + label + ")" : "");
    parts.push(`<path class="${edgeClass(label)}" data-edge="${e}" d="${edgePath(from, to)}" marker-end="url(#arrow)"><title>${esc(tip)}</title></path>`);
  });
  parts.push('</g><g id="nodes">');
  NODES.forEach((n, i) => {
    const tip = n.id + (n.affected ? " — affected: " + n.affected : "");
    parts.push(
      `<g class="node${n.affected ? " affected" : ""}" data-index="${i}" data-node="${esc(n.id)}" transform="translate(${n.x},${n.y})">` +
      `<rect width="${n.w}" height="${NODE_HEIGHT}" rx="5"/>` +
      `<text x="${n.w / 2}" y="${NODE_HEIGHT / 2 + 4}" text-anchor="middle">${esc(n.id)}</text><title>${esc(tip)}</title></g>`);
  });
  parts.push("</g></g></svg>");
  canvas.innerHTML = parts.join("");
}

function apply() {
  document.getElementById("viewport").setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.scale})`);
}

function fit() {
  const width = canvas.clientWidth || 800;
  const height = canvas.clientHeight || 600;
  view.scale = Math.min(width / DATA.width, height / DATA.height, 1.5);
  view.x = (width - DATA.width * view.scale) / 2;
  view.y = (height - DATA.height * view.scale) / 2;
  apply();
}

function zoomAround(factor, cx, cy) {
  const scale = Math.min(8, Math.max(0.05, view.scale * factor));
  view.x = cx - (cx - view.x) * (scale / view.scale);
  view.y = cy - (cy - view.y) * (scale / view.scale);
  view.scale = scale;
  apply();
}

function centerOn(i) {
  const n = NODES[i];
  view.x = canvas.clientWidth / 2 - (n.x + n.w / 2) * view.scale;
  view.y = canvas.clientHeight / 2 - (n.y + NODE_HEIGHT / 2) * view.scale;
  apply();
}

/** Every node reached from `start` over `edges` (OUT: dependencies, IN: dependents), and the
 * edges used. Cargo builds a dev-dependency only for the tests of the package declaring it:
 * what something depends on follows dev edges from the selected node only, and a dependent
 * through a dev edge is shown but its own dependents are not. */
function reach(start, edges, end) {
  const nodes = new Set();
  const used = new Set();
  const expanded = new Set([start]);
  const queue = [start];
  while (queue.length) {
    const current = queue.pop();
    for (const e of edges[current]) {
      const dev = EDGES[e][2].startsWith("dev");
      if (dev && end === 1 && current !== start) continue;
      used.add(e);
      const next = EDGES[e][end];
      if (next === start) continue;
      nodes.add(next);
      if (!(dev && end === 0) && !expanded.has(next)) {
        expanded.add(next);
        queue.push(next);
      }
    }
  }
  return { nodes, used };
}

function nodeButton(i) {
  return h("button", { className: "link", text: NODES[i].id, onclick: () => { select(i); centerOn(i); } });
}

function neighbourList(edges, end) {
  if (!edges.length) return h("p", { className: "hint", text: "none" });
  const list = h("ul");
  for (const e of edges) {
    const label = EDGES[e][2];
    list.append(h("li", {}, nodeButton(EDGES[e][end]), label ? " (" + label + ")" : ""));
  }
  return list;
}

function select(i) {
  selected = i;
  const dependencies = i < 0 ? null : reach(i, OUT, 1);
  const dependents = i < 0 ? null : reach(i, IN, 0);
  for (const g of canvas.querySelectorAll(".node")) {
    const k = Number(g.dataset.index);
    const isDependency = i >= 0 && dependencies.nodes.has(k);
    const isDependent = i >= 0 && !isDependency && dependents.nodes.has(k);
    g.classList.toggle("selected", k === i);
    g.classList.toggle("dependency", isDependency);
    g.classList.toggle("dependent", isDependent);
    g.classList.toggle("dimmed", i >= 0 && k !== i && !isDependency && !isDependent);
  }
  for (const path of canvas.querySelectorAll(".edge")) {
    const e = Number(path.dataset.edge);
    const isDependency = i >= 0 && dependencies.used.has(e);
    const isDependent = i >= 0 && !isDependency && dependents.used.has(e);
    path.classList.toggle("dependency", isDependency);
    path.classList.toggle("dependent", isDependent);
    path.classList.toggle("dimmed", i >= 0 && !isDependency && !isDependent);
  }
  renderDetail(i, dependencies, dependents);
}

function renderDetail(i, dependencies, dependents) {
  const panel = document.getElementById("detail");
  if (i < 0) {
    panel.replaceChildren(h("h2", { text: "Selection" }), h("p", { className: "hint", text: "Click a node, or search one by name." }));
    return;
  }
  const n = NODES[i];
  panel.replaceChildren(h("h2", { text: "Selection" }), h("h3", { text: n.id }));
  if (n.affected) {
    panel.append(h("p", {}, h("span", { className: "badge", text: "affected" }), " " + n.affected));
    panel.lastChild.firstChild.style.setProperty("--c", "var(--affected)");
  }
  if (n.details) {
    const list = h("ul");
    for (const line of n.details) list.append(h("li", { text: line }));
    panel.append(list);
  }
  panel.append(
    h("h2", { text: `Depends on: ${OUT[i].length} direct, ${dependencies.nodes.size} in all` }),
    neighbourList(OUT[i], 1),
    h("h2", { text: `Dependents: ${IN[i].length} direct, ${dependents.nodes.size} in all` }),
    neighbourList(IN[i], 0),
  );
}

function search(query, choose) {
  const needle = query.trim().toLowerCase();
  const matches = [];
  for (const g of canvas.querySelectorAll(".node")) {
    const k = Number(g.dataset.index);
    const match = needle !== "" && NODES[k].id.toLowerCase().includes(needle);
    g.classList.toggle("match", match);
    if (match) matches.push(k);
  }
  if (choose && matches.length) {
    const exact = matches.find((k) => NODES[k].id.toLowerCase() === needle);
    const chosen = exact !== undefined ? exact : matches[0];
    select(chosen);
    centerOn(chosen);
  }
}

function renderHeader() {
  document.getElementById("title").textContent = DATA.title;
  const affected = NODES.filter((n) => n.affected).length;
  document.getElementById("subtitle").textContent =
    NODES.length + " nodes · " + EDGES.length + " edges" +
    (DATA.affected_base !== undefined ? " · " + affected + " affected since " + DATA.affected_base : "");
  const legend = document.getElementById("legend");
  if (DATA.affected_base !== undefined) legend.append(h("span", { className: "swatch affected" }), "affected");
  legend.append(
    h("span", { className: "swatch dependency" }), "depends on",
    h("span", { className: "swatch dependent" }), "dependent",
  );
  if (EDGES.some((e) => e[2])) legend.append(h("span", { className: "hint", text: "  ·  dashed: build, dotted: dev" }));
  const names = document.getElementById("names");
  for (const n of NODES) names.append(h("option", { text: n.id }));
}

let drag = null;
canvas.addEventListener("pointerdown", (event) => {
  drag = { x: event.clientX, y: event.clientY, viewX: view.x, viewY: view.y, moved: false };
});
window.addEventListener("pointermove", (event) => {
  if (!drag) return;
  const dx = event.clientX - drag.x;
  const dy = event.clientY - drag.y;
  if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
  drag.moved = true;
  canvas.classList.add("dragging");
  view.x = drag.viewX + dx;
  view.y = drag.viewY + dy;
  apply();
});
window.addEventListener("pointerup", () => {
  canvas.classList.remove("dragging");
  setTimeout(() => { drag = null; }, 0);
});
canvas.addEventListener("click", (event) => {
  if (drag && drag.moved) return;
  const node = event.target.closest(".node");
  select(node ? Number(node.dataset.index) : -1);
});
canvas.addEventListener("wheel", (event) => {
  event.preventDefault();
  const box = canvas.getBoundingClientRect();
  zoomAround(Math.exp(-event.deltaY * 0.0015), event.clientX - box.left, event.clientY - box.top);
}, { passive: false });
const searchBox = document.getElementById("search");
searchBox.addEventListener("input", () => search(searchBox.value, false));
searchBox.addEventListener("change", () => search(searchBox.value, true));
searchBox.addEventListener("keydown", (event) => { if (event.key === "Enter") search(searchBox.value, true); });
document.getElementById("zoom-in").addEventListener("click", () => zoomAround(1.4, canvas.clientWidth / 2, canvas.clientHeight / 2));
document.getElementById("zoom-out").addEventListener("click", () => zoomAround(1 / 1.4, canvas.clientWidth / 2, canvas.clientHeight / 2));
document.getElementById("zoom-fit").addEventListener("click", fit);

renderHeader();
draw();
fit();
ready();
