// The mesh page: polls /api/view every two seconds and draws what the
// daemon answers (the SVG is drawn by the daemon, names escaped there).
"use strict";

const pollEvery = 2000;
const graphEl = document.getElementById("graph");
const statusEl = document.getElementById("status");
const destEl = document.getElementById("dest");
const pathEl = document.getElementById("path");
const linksEl = document.querySelector("#links tbody");
const unreachEl = document.getElementById("unreachable");
let updates = 0;

function text(tag, s, cls) {
  const e = document.createElement(tag);
  e.textContent = s;
  if (cls) e.className = cls;
  return e;
}

function fmtRTT(ns) {
  const ms = ns / 1e6;
  return ms >= 10 ? ms.toFixed(0) + " ms" : ms >= 1 ? ms.toFixed(1) + " ms" : (ns / 1e3).toFixed(0) + " µs";
}

function fillDestinations(g) {
  const want = destEl.value;
  const names = g.nodes.map(n => n.name).filter(n => n !== g.origin)
    .concat(g.unreachable.map(u => u.name));
  const have = Array.from(destEl.options).slice(1).map(o => o.value);
  if (names.join("\n") === have.join("\n")) return;
  while (destEl.options.length > 1) destEl.remove(1);
  for (const n of names) destEl.add(new Option(n, n));
  if (names.includes(want)) destEl.value = want;
}

function render(v) {
  const g = v.graph;
  graphEl.innerHTML = v.svg;
  for (const n of graphEl.querySelectorAll("g.node")) {
    if (n.dataset.state === "up") {
      n.addEventListener("click", () => { destEl.value = n.dataset.node; poll(); });
    }
  }
  fillDestinations(g);
  linksEl.replaceChildren(...g.links.map(l => {
    const tr = document.createElement("tr");
    const name = l.a + " — " + l.b + (l.reported_by ? " (reported by " + l.reported_by + " only)" : "");
    tr.append(text("td", name, "q-" + l.quality), text("td", String(l.cost)),
      text("td", fmtRTT(l.rtt_ns)), text("td", (100 * l.loss).toFixed(1) + "%"), text("td", String(l.streams)));
    return tr;
  }));
  unreachEl.replaceChildren(...g.unreachable.map(u => text("li", u.name + ": " + u.error)));
  if (v.path && v.path.length) {
    pathEl.className = "";
    pathEl.textContent = v.path.join(" → ") + " (echo " + fmtRTT(v.rtt_ns) + ")";
  } else if (v.path_error) {
    pathEl.className = "error";
    pathEl.textContent = v.path_error;
  } else {
    pathEl.textContent = "";
  }
  updates++;
  document.body.dataset.updates = String(updates);
  statusEl.className = "";
  statusEl.textContent = "seen from " + g.origin + " · " + g.nodes.length + " nodes, " + g.links.length +
    " links · updated " + new Date().toLocaleTimeString();
}

let timer = null;
let inFlight = false;

async function poll() {
  clearTimeout(timer);
  if (inFlight) return;
  inFlight = true;
  try {
    const r = await fetch("api/view?to=" + encodeURIComponent(destEl.value), { cache: "no-store", headers: { "X-Circuitmesh-Page": "1" } });
    const v = await r.json();
    if (!r.ok) throw new Error(v.error || r.statusText);
    render(v);
  } catch (e) {
    statusEl.className = "stale";
    statusEl.textContent = "not updated: " + e.message;
  } finally {
    inFlight = false;
    timer = setTimeout(poll, pollEvery);
  }
}

destEl.addEventListener("change", poll);
poll();
