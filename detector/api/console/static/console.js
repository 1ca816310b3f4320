// StreetWatch operator console: polls the service's read-only JSON API and draws incidents, their evidence, a
// map, stream health and the latest frame per source. Images are fetched with the token and shown as blob URLs.
"use strict";

const TOKEN_KEY = "streetwatch-token";
const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];
const SVG_NS = "http://www.w3.org/2000/svg";
const MAP_W = 600, MAP_H = 400;
const state = { pollMs: 2000, basemap: { kind: "vector" }, basemapUrl: null, evidence: new Map(), frames: new Map() };

class Unauthorized extends Error {}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function colourOf(category) {
  let h = 0;
  for (const ch of category) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

function when(ts) {
  return ts == null ? "–" : new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const response = await fetch(path, { headers: token ? { Authorization: "Bearer " + token } : {}, cache: "no-store" });
  if (response.status === 401 || response.status === 403) {
    const body = await response.json().catch(() => ({}));
    throw new Unauthorized(body.error || response.statusText);
  }
  if (!response.ok) throw new Error(`${path}: ${response.status} ${response.statusText}`);
  return response;
}

async function blobUrl(path) {
  return URL.createObjectURL(await (await api(path)).blob());
}

// Evidence is content-addressed: fetched once per sha256 and kept.
function evidenceImage(ev) {
  const img = el("img", { class: "evidence", alt: ev.kind, "data-sha256": ev.sha256 });
  let url = state.evidence.get(ev.sha256);
  if (!url) {
    url = blobUrl(ev.url);
    state.evidence.set(ev.sha256, url);
    url.catch(() => state.evidence.delete(ev.sha256));
  }
  url.then((u) => { img.src = u; }).catch(() => { img.alt = ev.kind + " (not available)"; });
  return img;
}

function drawIncidents(incidents) {
  document.getElementById("incident-count").textContent = `(${incidents.length})`;
  const cards = incidents.map((inc) => {
    const place = inc.location
      ? `${inc.location.lat.toFixed(6)}, ${inc.location.lon.toFixed(6)} ±${inc.location.accuracy_m} m`
      : inc.location_note || "not located";
    const card = el("article", { class: "incident", "data-incident-id": inc.incident_id },
      el("div", { class: "title" }, `${inc.category} · ${inc.label} (${inc.case_code})`),
      el("div", { class: "meta" }, `${inc.incident_id} · ${inc.severity} · ${inc.source_id}` +
        (inc.zone_id ? ` · zone ${inc.zone_id}` : "")),
      el("div", { class: "meta" }, `${inc.last_event} · first seen ${when(inc.first_seen_ts)} · ` +
        `${inc.duration_s.toFixed(0)} s · confidence ${inc.confidence.toFixed(2)} · ${place}`),
      el("div", {}, ...inc.evidence.map(evidenceImage)));
    card.style.setProperty("--colour", colourOf(inc.category));
    return card;
  });
  document.getElementById("incidents").replaceChildren(...cards);
}

// Projections: the configured image's bounds (equirectangular), Web Mercator tiles, or the incidents' own box.
function mercator(lat, lon, zoom) {
  const scale = 256 * 2 ** zoom, s = Math.sin((lat * Math.PI) / 180);
  return [((lon + 180) / 360) * scale, (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * scale];
}

function boxOf(points) {
  const lats = points.map((p) => p.lat), lons = points.map((p) => p.lon);
  let south = Math.min(...lats), north = Math.max(...lats), west = Math.min(...lons), east = Math.max(...lons);
  const padLat = Math.max((north - south) * 0.15, 0.0005), padLon = Math.max((east - west) * 0.15, 0.0005);
  return { south: south - padLat, north: north + padLat, west: west - padLon, east: east + padLon };
}

function projection(points) {
  const b = state.basemap;
  if (b.kind === "image") {
    const { south, west, north, east } = b.bounds;
    return { project: (lat, lon) => [((lon - west) / (east - west)) * MAP_W, ((north - lat) / (north - south)) * MAP_H],
      under: (g) => { if (state.basemapUrl) g.append(svg("image", { href: state.basemapUrl, x: 0, y: 0,
        width: MAP_W, height: MAP_H, preserveAspectRatio: "none" })); } };
  }
  const box = boxOf(points);
  if (b.kind === "tiles") {
    let zoom = 19;
    while (zoom > 0) {
      const [x0, y0] = mercator(box.north, box.west, zoom), [x1, y1] = mercator(box.south, box.east, zoom);
      if (x1 - x0 <= MAP_W && y1 - y0 <= MAP_H) break;
      zoom -= 1;
    }
    const [cx, cy] = mercator((box.north + box.south) / 2, (box.west + box.east) / 2, zoom);
    const ox = cx - MAP_W / 2, oy = cy - MAP_H / 2;
    return { project: (lat, lon) => { const [x, y] = mercator(lat, lon, zoom); return [x - ox, y - oy]; },
      under: (g) => {
        for (let tx = Math.floor(ox / 256); tx * 256 < ox + MAP_W; tx++) {
          for (let ty = Math.floor(oy / 256); ty * 256 < oy + MAP_H; ty++) {
            if (ty < 0 || ty >= 2 ** zoom) continue;
            const href = b.tile_url.replace("{z}", zoom).replace("{x}", ((tx % 2 ** zoom) + 2 ** zoom) % 2 ** zoom)
              .replace("{y}", ty);
            g.append(svg("image", { href, x: tx * 256 - ox, y: ty * 256 - oy, width: 256, height: 256 }));
          }
        }
      } };
  }
  // Plain vector: equirectangular over the incidents' box, metres kept square (longitude scaled by cos(lat)).
  const k = Math.cos((((box.north + box.south) / 2) * Math.PI) / 180);
  const spanX = (box.east - box.west) * k, spanY = box.north - box.south;
  const scale = Math.min(MAP_W / spanX, MAP_H / spanY);
  const ox = (MAP_W - spanX * scale) / 2, oy = (MAP_H - spanY * scale) / 2;
  return { project: (lat, lon) => [ox + (lon - box.west) * k * scale, oy + (box.north - lat) * scale],
    under: (g) => g.append(svg("rect", { x: ox, y: oy, width: spanX * scale, height: spanY * scale,
      fill: "#f8fafc", stroke: "#99a" })) };
}

function drawMap(incidents) {
  const map = document.getElementById("map");
  const located = incidents.filter((inc) => inc.location);
  const points = located.map((inc) => inc.location);
  const layer = svg("g");
  if (points.length || state.basemap.kind === "image") {
    const { project, under } = projection(points);
    under(layer);
    for (const inc of located) {
      const [x, y] = project(inc.location.lat, inc.location.lon);
      const dot = svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 7, fill: colourOf(inc.category),
        stroke: "#fff", "stroke-width": 2, class: "incident-dot", "data-incident-id": inc.incident_id });
      dot.append(svg("title", {}, `${inc.category} ${inc.incident_id} (${inc.source_id})`));
      layer.append(dot);
    }
  }
  if (!points.length) layer.append(svg("text", { x: 20, y: 30, class: "empty" }, "no located open incidents"));
  map.replaceChildren(layer);
  const categories = [...new Set(incidents.map((inc) => inc.category))].sort();
  document.getElementById("legend").replaceChildren(...categories.map((c) => {
    const dot = el("i"); dot.style.background = colourOf(c);
    return el("span", {}, dot, c);
  }));
}

function drawHealth(sources) {
  const stale = Math.max(10, (3 * state.pollMs) / 1000);
  const rows = sources.map((s) => {
    const live = s.seen_ago_s !== null && s.seen_ago_s < stale;
    const errors = Object.entries(s.errors).map(([code, n]) => `${code} ${n}`).join(", ") || "none";
    return el("tr", { "data-source-id": s.source_id },
      el("td", {}, s.source_id),
      el("td", { class: live ? "live" : "stale" }, live ? "live" : `no frame for ${Math.round(s.seen_ago_s)} s`),
      el("td", {}, String(s.frames_received)), el("td", {}, String(s.frames_ok)),
      el("td", {}, String(s.frames_dropped)), el("td", {}, errors),
      el("td", {}, s.fps === null ? "–" : s.fps.toFixed(1)),
      el("td", {}, s.gaps ? `${s.gaps} (${s.gap_seconds.toFixed(0)} s)` : "0"),
      el("td", {}, when(s.last_capture_ts)));
  });
  document.querySelector("#health tbody").replaceChildren(...rows);
}

async function drawFrames(sources) {
  const box = document.getElementById("frames");
  for (const s of sources.filter((s) => s.has_frame)) {
    let figure = box.querySelector(`figure[data-source-id="${CSS.escape(s.source_id)}"]`);
    if (!figure) {
      figure = el("figure", { "data-source-id": s.source_id },
        el("img", { class: "frame", alt: `latest frame of ${s.source_id}`, "data-frame-source": s.source_id }),
        el("figcaption", {}, s.source_id));
      box.append(figure);
    }
    const img = figure.querySelector("img");
    const url = await blobUrl(`/api/sources/${encodeURIComponent(s.source_id)}/frame.jpg`);
    const old = state.frames.get(s.source_id);
    img.onload = () => { if (old) URL.revokeObjectURL(old); };
    img.src = url;
    state.frames.set(s.source_id, url);
  }
}

function showStatus(text, error = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("error", error);
}

async function setup() {
  const config = await (await api("/api/config")).json();
  state.pollMs = config.poll_interval_s * 1000;
  state.basemap = config.basemap;
  document.getElementById("attribution").textContent = config.basemap.attribution || "";
  if (config.basemap.kind === "image") state.basemapUrl = await blobUrl("/api/basemap");
  state.ready = true;
}

async function refresh() {
  try {
    if (!state.ready) await setup();
    const [incidents, sources] = await Promise.all([
      api("/api/incidents?state=open").then((r) => r.json()),
      api("/api/sources").then((r) => r.json()),
    ]);
    drawIncidents(incidents.incidents);
    drawMap(incidents.incidents);
    drawHealth(sources.sources);
    await drawFrames(sources.sources);
    showStatus(`updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    if (err instanceof Unauthorized) {
      askForToken(err.message);
      return; // resumes when a token is given
    }
    showStatus(`cannot reach the service: ${err.message}`, true);
  }
  setTimeout(refresh, state.pollMs);
}

function askForToken(message) {
  const form = document.getElementById("token-form");
  document.getElementById("token-error").textContent = sessionStorage.getItem(TOKEN_KEY) ? message : "";
  form.hidden = false;
  showStatus("a token is needed", true);
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  document.getElementById("token-form").hidden = true;
  refresh();
});

refresh();
