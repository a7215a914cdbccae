"use strict";
// The helpers every page's script shares: the data block, elements, text, durations.
const DATA = JSON.parse(document.getElementById("xtask-data").textContent);

/** An element with a class, text and children; every text is inserted as text. */
function h(tag, options, ...children) {
  const node = document.createElement(tag);
  const o = options || {};
  if (o.className) node.className = o.className;
  if (o.text !== undefined) node.textContent = String(o.text);
  if (o.title) node.title = o.title;
  if (o.dataset) Object.assign(node.dataset, o.dataset);
  if (o.onclick) node.addEventListener("click", o.onclick);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Text made safe for markup (the SVG drawings are built as markup). */
function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** 12 ms, 1.25 s, 12.5 s, 2 min 05 s. */
function duration(ms) {
  if (ms < 1000) return Math.round(ms) + " ms";
  if (ms < 10000) return (ms / 1000).toFixed(2) + " s";
  if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
  const minutes = Math.floor(ms / 60000);
  const seconds = Math.round((ms % 60000) / 1000);
  return minutes + " min " + String(seconds).padStart(2, "0") + " s";
}

/** A definition list of [term, description] pairs; a description may be a node. */
function definitions(pairs) {
  const list = h("dl");
  for (const [term, description] of pairs) {
    if (description === null || description === undefined) continue;
    list.append(h("dt", { text: term }), h("dd", {}, description));
  }
  return list;
}

/** Marks the page ready (the browser test and the open-time measurement wait for it). */
function ready() {
  performance.mark("xtask-rendered");
  document.body.dataset.ready = "true";
}
