// Shopkeeper dashboard: catalog filter and sort, the live view's polling. No libraries.
"use strict";

function markNav() {
  const path = location.pathname;
  const section = path.startsWith("/ui/models") ? "models"
    : path.startsWith("/ui/playground") ? "playground"
    : path.startsWith("/ui/live") ? "live" : "catalog";
  const link = document.querySelector(`nav a[data-nav="${section}"]`);
  if (link) link.classList.add("active");
}

function setupCatalog() {
  const table = document.getElementById("catalog");
  if (!table) return;
  const text = document.getElementById("filter");
  const kind = document.getElementById("filter-kind");
  const status = document.getElementById("filter-status");
  const rows = Array.from(table.tBodies[0].rows);
  function apply() {
    const needle = text.value.trim().toLowerCase();
    for (const row of rows) {
      const ok = (!needle || row.textContent.toLowerCase().includes(needle))
        && (!kind.value || row.dataset.kind === kind.value)
        && (!status.value || row.dataset.status === status.value);
      row.hidden = !ok;
    }
  }
  for (const el of [text, kind, status]) el.addEventListener("input", apply);
  table.tHead.querySelectorAll("th[data-type]").forEach((th, col) => {
    th.addEventListener("click", () => {
      const asc = !th.classList.contains("asc");
      table.tHead.querySelectorAll("th").forEach((h) => h.classList.remove("asc", "desc"));
      th.classList.add(asc ? "asc" : "desc");
      const key = (row) => {
        const cell = row.cells[col];
        const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim();
        return th.dataset.type === "num" ? Number(raw) : raw.toLowerCase();
      };
      rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * (asc ? 1 : -1));
      for (const row of rows) table.tBodies[0].appendChild(row);
    });
  });
}

function setupLive() {
  const root = document.getElementById("live");
  if (!root) return;
  const feed = root.dataset.feed;
  const history = [];
  let last = null;
  const put = (id, value) => { const el = document.getElementById(id); if (el) el.textContent = value; };
  const fmt = (v, digits) => (v === null || v === undefined ? "—" : Number(v).toFixed(digits));
  function cell(text, code) {
    const td = document.createElement("td");
    if (code) { const c = document.createElement("code"); c.textContent = text; td.appendChild(c); }
    else td.textContent = text;
    return td;
  }
  function draw() {
    const line = document.getElementById("rps-line");
    if (!line || history.length < 2) return;
    const top = Math.max(1, ...history.map((p) => p.rps));
    const t0 = history[0].t, span = Math.max(1, history[history.length - 1].t - t0);
    line.setAttribute("points", history.map((p) =>
      `${(10 + (p.t - t0) / span * 440).toFixed(1)},${(110 - p.rps / top * 85).toFixed(1)}`).join(" "));
  }
  async function poll() {
    try {
      const resp = await fetch(feed, { credentials: "same-origin", cache: "no-store" });
      if (!resp.ok) return;
      const s = await resp.json();
      if (last) {
        const rps = Math.max(0, (s.requests - last.requests) / Math.max(0.001, s.t - last.t));
        put("m-rps", rps.toFixed(1));
        history.push({ t: s.t, rps });
        while (history.length > 60) history.shift();
        draw();
      }
      last = s;
      put("m-requests", Math.round(s.requests));
      put("m-p50", fmt(s.latency_ms.p50, 2)); put("m-p95", fmt(s.latency_ms.p95, 2));
      put("m-p99", fmt(s.latency_ms.p99, 2));
      put("m-hit", s.cache.hit_rate === null ? "—" : (s.cache.hit_rate * 100).toFixed(1) + "%");
      put("m-hits", Math.round(s.cache.hit)); put("m-misses", Math.round(s.cache.miss));
      put("m-fallbacks", Math.round(s.fallback_total)); put("m-errors", Math.round(s.errors));
      put("m-model", s.model_version); put("m-snapshot", s.snapshot); put("m-uptime", s.uptime_s);
      const body = document.getElementById("routes-body");
      body.replaceChildren(...s.routes.map((r) => {
        const tr = document.createElement("tr");
        tr.append(cell(r.route, true), cell(Math.round(r.requests)), cell(Math.round(r.errors)),
          cell(fmt(r.p50_ms, 2)), cell(fmt(r.p95_ms, 2)));
        return tr;
      }));
    } catch (err) {
      put("m-rps", "offline");
    }
  }
  poll();
  setInterval(poll, 2000);
}

document.addEventListener("DOMContentLoaded", () => { markNav(); setupCatalog(); setupLive(); });
