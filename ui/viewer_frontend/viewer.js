/* Saliency viewer: a dependency-free canvas component for Streamlit (component protocol v1).
 *
 * The film arrives at native resolution in its stored values (8/16-bit, zlib, base64) and every map as
 * float32, so that window/level, opacity, colormap, threshold, method, zoom/pan and playback all run here,
 * in the browser, without a round trip to Python. Settings go back to Python (debounced) only to be kept
 * across images and pages. Ground truth is drawn as vectors in screen space: one rectangle per box and the
 * mask's outline, crisp at any zoom.
 */
"use strict";

const ST = {
  send(type, data) { window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type }, data), "*"); },
  ready() { ST.send("streamlit:componentReady", { apiVersion: 1 }); },
  height(h) { ST.send("streamlit:setFrameHeight", { height: h }); },
  value(v) { ST.send("streamlit:setComponentValue", { value: v, dataType: "json" }); },
};

const S = {              // everything the viewer shows
  args: null, dataKey: null, film: null, maps: {}, settings: null,
  view: { zoom: 1, cx: null, cy: null, rot: 0, flip: false },  // rot: quarter turns clockwise; flip: left–right
  frame: 0, playing: null, tool: "pan", filmCanvas: null, filmSig: null, mapCanvases: {}, panels: [],
  lastSent: null, lastReceived: null, draws: 0, cursor: null, marks: [], navSeq: 0,
};
window.__viewer = S;     // for the browser tests and the latency bench

async function decode(enc) {
  const response = await fetch("data:application/octet-stream;base64," + enc.data);
  const stream = (await response.blob()).stream().pipeThrough(new DecompressionStream("deflate"));
  const buffer = await new Response(stream).arrayBuffer();
  const Typed = { u1: Uint8Array, u2: Uint16Array, f4: Float32Array }[enc.dtype];
  return Object.assign({}, enc, { values: new Typed(buffer), h: enc.shape[0], w: enc.shape[1] });
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c);
  return node;
}

/* ---------- what is on screen: panels by layout ---------- */

function currentPanels() {
  const a = S.args;
  if (a.layout === "states") return (a.frames[S.frame] || a.frames[0]).panels;
  return a.panels;
}

function panelByKey(list, key) { return list.find(p => p.key === key) || list[0]; }

/* ---------- film: window/level into an offscreen canvas at native resolution ---------- */

function windowOf() {
  const f = S.film, w = S.settings.window || {};
  if (w.preset && f.presets[w.preset]) return f.presets[w.preset];
  if (w.preset) return f.presets.full;  // a preset this film lacks (no header window): its full range
  const span = Math.max(f.hi - f.lo, 1);
  const cf = w.cf ?? 0.5, wf = w.wf ?? 1.0;
  return [f.lo + cf * span, Math.max(1, wf * span)];
}

function renderFilm() {
  const f = S.film, [center, width] = windowOf();
  const invert = !!S.settings.invert;  // the reader's inversion, on top of the photometry's
  const sig = center + "/" + width + "/" + invert;
  if (S.filmCanvas && S.filmSig === sig) return;
  const canvas = S.filmCanvas || el("canvas");
  canvas.width = f.w; canvas.height = f.h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(f.w, f.h), px = img.data, v = f.values, n = v.length;
  const low = center - 0.5 - (width - 1) / 2, scale = width > 1 ? 255 / (width - 1) : 0;
  const gray = stored => {  // DICOM linear window (PS3.3 C.11.2.1.2.1), MONOCHROME1 inverted
    const value = f.offset + stored * f.scale;
    let g = width > 1 ? (value - low) * scale : (value > center - 0.5 ? 255 : 0);
    g = g < 0 ? 0 : g > 255 ? 255 : g;
    return f.inverted !== invert ? 255 - g : g;
  };
  if (f.dtype !== "f4") {  // a look-up table over the stored values
    let max = 0; for (let i = 0; i < n; i++) if (v[i] > max) max = v[i];
    const lut = new Uint8ClampedArray(max + 1);
    for (let s = 0; s <= max; s++) lut[s] = gray(s);
    for (let i = 0, j = 0; i < n; i++, j += 4) { const g = lut[v[i]]; px[j] = px[j + 1] = px[j + 2] = g; px[j + 3] = 255; }
  } else {
    for (let i = 0, j = 0; i < n; i++, j += 4) { const g = gray(v[i]); px[j] = px[j + 1] = px[j + 2] = g; px[j + 3] = 255; }
  }
  ctx.putImageData(img, 0, 0);
  S.filmCanvas = canvas; S.filmSig = sig;
}

/* ---------- maps: colormap, opacity, threshold / top k % into small offscreen canvases ---------- */

function cutoff(m) {  // the value above which a map's top k % lies (its percentile, cached per k)
  const s = S.settings;
  if (s.mode !== "top") return -Infinity;
  const key = "top" + s.top;
  if (m[key] === undefined) {
    const finite = Array.from(m.values).filter(Number.isFinite).sort((a, b) => a - b);
    const q = (100 - s.top) / 100 * (finite.length - 1), lo = Math.floor(q), hi = Math.ceil(q);
    m[key] = finite.length ? finite[lo] + (finite[hi] - finite[lo]) * (q - lo) : Infinity;  // numpy's linear
  }
  return m[key];
}

const FADE_END = 0.5;  // map value (|v| for signed maps) from which "fade" paints at the full opacity

function mapCanvas(panel) {
  const m = S.maps[panel.key];
  if (!m) return null;
  const s = S.settings, cmap = panel.signed ? "RdBu_r" : s.cmap;
  const sig = [cmap, s.opacity, s.mode, s.threshold, s.top].join("/");
  const cached = S.mapCanvases[panel.key];
  if (cached && cached.sig === sig) return cached.canvas;
  const canvas = cached ? cached.canvas : el("canvas");
  canvas.width = m.w; canvas.height = m.h;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(m.w, m.h), px = img.data;
  const lut = S.args.colormaps[cmap], alpha = Math.round(255 * s.opacity);
  const floor = s.mode === "threshold" ? s.threshold : cutoff(m);
  const [lo, hi] = panel.signed ? [-1, 1] : [0, 1];
  // "fade": the opacity ramps up from 0 at a zero value to the slider's at FADE_END and above, so that the
  // film shows through where the map says nothing (a heat map's transparent low end)
  const fade = s.mode === "fade";
  for (let i = 0, j = 0; i < m.values.length; i++, j += 4) {
    const v = m.values[i];
    if (!Number.isFinite(v) || (!panel.signed && v < floor)) { px[j + 3] = 0; continue; }
    let t = Math.round(255 * (v - lo) / (hi - lo)); t = t < 0 ? 0 : t > 255 ? 255 : t;
    px[j] = lut[3 * t]; px[j + 1] = lut[3 * t + 1]; px[j + 2] = lut[3 * t + 2];
    px[j + 3] = fade ? Math.round(alpha * Math.min(1, Math.abs(v) / FADE_END)) : alpha;
  }
  ctx.putImageData(img, 0, 0);
  S.mapCanvases[panel.key] = { canvas, sig };
  return canvas;
}

/* ---------- drawing one panel: film, map, ground truth, all under one shared zoom/pan ---------- */

function fitScale(canvas) {  // the film fitted to the panel, turned a quarter where rotated
  const f = S.film, turned = S.view.rot % 2 === 1;
  return Math.min(canvas.width / (turned ? f.h : f.w), canvas.height / (turned ? f.w : f.h));
}

function matrixOf(canvas) {  // film pixel → canvas pixel: centre, quarter turns, left–right flip, zoom, pan
  const f = S.film, s = fitScale(canvas) * S.view.zoom;
  const cx = S.view.cx ?? f.w / 2, cy = S.view.cy ?? f.h / 2;
  return new DOMMatrix().translate(canvas.width / 2, canvas.height / 2).rotate(90 * S.view.rot)
    .scale(S.view.flip ? -1 : 1, 1).scale(s).translate(-cx, -cy);
}

function transformOf(canvas) {  // (the scale alone, for what is measured in screen pixels)
  return { s: fitScale(canvas) * S.view.zoom };
}

function filmDelta(canvas, dx, dy) {  // a screen displacement in film pixels (rotation and flip undone)
  const m = matrixOf(canvas).inverse();
  return [m.a * dx + m.c * dy, m.b * dx + m.d * dy];
}

function drawPanel(view) {
  const { canvas, panel } = view, ctx = canvas.getContext("2d"), f = S.film;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr)), h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const { s } = transformOf(canvas), M = matrixOf(canvas);
  const at = (x, y) => { const p = M.transformPoint(new DOMPoint(x, y)); return [p.x, p.y]; };
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, w, h);
  ctx.setTransform(M);
  ctx.imageSmoothingEnabled = s < 2;  // magnified beyond 2×: each stored pixel shown as it is
  ctx.drawImage(S.filmCanvas, 0, 0);
  const mc = panel && S.settings.opacity > 0 ? mapCanvas(panel) : null;
  if (mc) { ctx.imageSmoothingEnabled = true; ctx.drawImage(mc, 0, 0, f.w, f.h); }
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  if (S.settings.gt) {
    const gt = S.args.truth || {};
    ctx.lineWidth = 1.5 * dpr;
    ctx.strokeStyle = "#39ff14";
    for (const [x, y, bw, bh] of gt.boxes || []) polygon(ctx, [[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]].map(p => at(...p)));
    ctx.strokeStyle = "#00e5ff";
    for (const line of gt.contours || []) polygon(ctx, line.map(p => at(...p)));
  }
  drawMarks(ctx, at, dpr, view);
  drawOrientation(ctx, at, dpr, w, h);
}

function polygon(ctx, points, closed = true) {
  ctx.beginPath();
  points.forEach(([x, y], k) => (k ? ctx.lineTo : ctx.moveTo).call(ctx, x, y));
  if (closed) ctx.closePath();
  ctx.stroke();
}

function drawAll() {
  if (S.cursor && S.cursor.view) {  // the panel under the cursor may show another map now (playback, a method)
    S.cursor.panel = S.cursor.view.panel;
    S.cursor.value = sample(S.cursor.panel, S.cursor.fx, S.cursor.fy);
  }
  renderFilm();
  for (const view of S.panels) drawPanel(view);
  drawColorbar();
  updateReadout();
  S.draws += 1;
  document.body.dataset.draws = S.draws;
}

let pending = false;
function redraw() {  // at most one draw per animation frame
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; drawAll(); });
}

/* ---------- the reader's marks (distance, rectangle ROI) and the orientation markers ---------- */

const OPPOSITE = { L: "R", R: "L", A: "P", P: "A", H: "F", F: "H" };
const opposite = code => [...code].map(c => OPPOSITE[c] || c).join("");

function distance(a, b) {  // in mm where the film has a pixel spacing ([row, column] mm), else in pixels
  const f = S.film, dx = b[0] - a[0], dy = b[1] - a[1];
  if (f.spacing) return { value: Math.hypot(dx * f.spacing[1], dy * f.spacing[0]), unit: "mm" };
  return { value: Math.hypot(dx, dy), unit: "px" };
}

function roiStats(mark, panel) {  // the film's values inside a rectangle (modality units), and the map's mean
  const f = S.film;
  const x0 = Math.max(0, Math.floor(Math.min(mark.a[0], mark.b[0]))), x1 = Math.min(f.w, Math.ceil(Math.max(mark.a[0], mark.b[0])));
  const y0 = Math.max(0, Math.floor(Math.min(mark.a[1], mark.b[1]))), y1 = Math.min(f.h, Math.ceil(Math.max(mark.a[1], mark.b[1])));
  if (!mark.film) {  // the film's part, once per rectangle
    let n = 0, sum = 0, sq = 0;
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
      const v = f.offset + f.values[y * f.w + x] * f.scale; n++; sum += v; sq += v * v;
    }
    const mean = n ? sum / n : NaN;
    const area = f.spacing ? { value: (x1 - x0) * (y1 - y0) * f.spacing[0] * f.spacing[1], unit: "mm²" }
                           : { value: (x1 - x0) * (y1 - y0), unit: "px²" };
    mark.film = { n, mean, sd: n > 1 ? Math.sqrt(Math.max(0, (sq - n * mean * mean) / (n - 1))) : 0, area };
  }
  const m = panel && S.maps[panel.key];
  let mapMean;
  if (m) {
    const mx0 = Math.floor(x0 * m.w / f.w), mx1 = Math.max(mx0 + 1, Math.ceil(x1 * m.w / f.w));
    const my0 = Math.floor(y0 * m.h / f.h), my1 = Math.max(my0 + 1, Math.ceil(y1 * m.h / f.h));
    let n = 0, sum = 0;
    for (let y = my0; y < Math.min(m.h, my1); y++) for (let x = mx0; x < Math.min(m.w, mx1); x++) {
      const v = m.values[y * m.w + x]; if (Number.isFinite(v)) { n++; sum += v; }
    }
    mapMean = n ? sum / n : undefined;
  }
  return Object.assign({ mapMean }, mark.film);
}

function markText(mark, panel) {
  if (mark.type === "line") { const d = distance(mark.a, mark.b); return `${d.value.toFixed(d.unit === "mm" ? 1 : 0)} ${d.unit}`; }
  const r = roiStats(mark, panel), unit = S.film.unit ? " " + S.film.unit : "";
  if (!r.n) return "outside the film";
  return `mean ${r.mean.toFixed(1)}${unit} ± ${r.sd.toFixed(1)} · ${r.area.value.toFixed(r.area.unit === "mm²" ? 1 : 0)} ${r.area.unit}` +
         (r.mapMean !== undefined ? ` · map ${r.mapMean.toFixed(3)}` : "");
}

function drawMarks(ctx, at, dpr, view) {
  ctx.lineWidth = 1.5 * dpr;
  ctx.font = `${12 * dpr}px sans-serif`;
  for (const mark of S.marks) {
    ctx.strokeStyle = "#ffd60a"; ctx.fillStyle = "#ffd60a";
    let end;
    if (mark.type === "line") {
      const a = at(...mark.a), b = at(...mark.b);
      polygon(ctx, [a, b], false);
      for (const p of [a, b]) ctx.fillRect(p[0] - 2 * dpr, p[1] - 2 * dpr, 4 * dpr, 4 * dpr);
      end = b;
    } else {
      const [x0, y0] = mark.a, [x1, y1] = mark.b;
      const corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]].map(p => at(...p));
      polygon(ctx, corners);
      end = corners.reduce((m, p) => (p[1] > m[1] ? p : m));
    }
    const text = markText(mark, view.panel);
    ctx.lineWidth = 3 * dpr; ctx.strokeStyle = "#000";
    ctx.strokeText(text, end[0] + 6 * dpr, end[1] + 14 * dpr); ctx.fillText(text, end[0] + 6 * dpr, end[1] + 14 * dpr);
    ctx.lineWidth = 1.5 * dpr;
  }
}

function drawOrientation(ctx, at, dpr, w, h) {  // the patient's directions at the film's four edges, as shown
  const o = S.film.orientation;
  if (!o || !S.settings.markers) return;
  const f = S.film, pad = 16 * dpr;
  const edges = [[f.w, f.h / 2, o.right], [0, f.h / 2, opposite(o.right)]];
  const small = h < 300 * dpr;  // a thumbnail: left and right only (its tag sits at the top)
  if (o.bottom && !small) edges.push([f.w / 2, f.h, o.bottom], [f.w / 2, 0, opposite(o.bottom)]);
  ctx.font = `bold ${15 * dpr}px sans-serif`; ctx.textAlign = "center"; ctx.textBaseline = "middle";
  const [cx, cy] = at(f.w / 2, f.h / 2);
  for (const [x, y, label] of edges) {
    let [px, py] = at(x, y);
    const len = Math.hypot(px - cx, py - cy) || 1;  // a little inside the film's edge
    px -= (px - cx) / len * pad; py -= (py - cy) / len * pad;
    px = Math.min(w - pad, Math.max(pad, px)); py = Math.min(h - pad, Math.max(pad, py));
    // read from the file: yellow; assumed from the view position: light blue with a "?" (the readout says why)
    const shown = o.assumed ? label + "?" : label;
    ctx.lineWidth = 3 * dpr; ctx.strokeStyle = "#000"; ctx.fillStyle = o.assumed ? "#8ecae6" : "#ffd60a";
    ctx.strokeText(shown, px, py); ctx.fillText(shown, px, py);
  }
  ctx.textAlign = "start"; ctx.textBaseline = "alphabetic";
}

/* ---------- colorbar and the value under the cursor ---------- */

function drawColorbar() {
  const bar = document.getElementById("cbar");
  if (!bar) return;
  const main = (S.cursor && S.cursor.panel) || (S.panels[0] && S.panels[0].panel), signed = !!(main && main.signed);
  const lut = S.args.colormaps[signed ? "RdBu_r" : S.settings.cmap];
  bar.width = 16; bar.height = 256;
  const ctx = bar.getContext("2d");
  for (let t = 0; t < 256; t++) {
    ctx.fillStyle = `rgb(${lut[3 * t]},${lut[3 * t + 1]},${lut[3 * t + 2]})`;
    ctx.fillRect(0, 255 - t, 16, 1);
  }
  const floor = S.settings.mode === "threshold" ? S.settings.threshold : null;
  if (floor !== null && !signed) { ctx.fillStyle = "rgba(255,255,255,.75)"; ctx.fillRect(0, 255 - Math.round(255 * floor), 16, 256); }
  if (S.cursor && S.cursor.value !== undefined && Number.isFinite(S.cursor.value)) {
    const [lo, hi] = signed ? [-1, 1] : [0, 1];
    const y = 255 - Math.round(255 * Math.min(1, Math.max(0, (S.cursor.value - lo) / (hi - lo))));
    ctx.fillStyle = "#fff"; ctx.fillRect(0, y - 2, 16, 4); ctx.strokeStyle = "#000"; ctx.strokeRect(0, y - 2, 16, 4);
  }
  document.getElementById("cbar-top").textContent = signed ? "+1 (A higher)" : "1";
  document.getElementById("cbar-bottom").textContent = signed ? "−1 (B higher)" : "0";
}

function sample(panel, fx, fy) {
  const m = panel && S.maps[panel.key], f = S.film;
  if (!m) return undefined;
  const x = Math.min(m.w - 1, Math.floor(fx * m.w / f.w)), y = Math.min(m.h - 1, Math.floor(fy * m.h / f.h));
  return m.values[y * m.w + x];
}

function updateReadout() {
  const out = document.getElementById("readout");
  if (!out) return;
  const [c, w] = windowOf(), f = S.film, unit = f.unit ? " " + f.unit : "";
  let text = `Window L ${c.toFixed(0)} W ${w.toFixed(0)}${S.settings.window && S.settings.window.preset ? " (" + S.settings.window.preset + ")" : ""}` +
             ` · zoom ${(S.view.zoom * 100).toFixed(0)} %`;
  if (S.cursor) {
    const { fx, fy, panel, value } = S.cursor;
    const stored = f.values[Math.floor(fy) * f.w + Math.floor(fx)];
    text += ` · x ${Math.floor(fx)} y ${Math.floor(fy)} · pixel ${(f.offset + stored * f.scale).toFixed(f.scale === 1 ? 0 : 2)}${unit}`;
    if (panel && value !== undefined) text += ` · ${panel.label} ${Number.isFinite(value) ? value.toFixed(3) : "—"}`;
  }
  const last = S.marks[S.marks.length - 1];
  if (last) text += ` · ${last.type === "line" ? "distance" : "ROI"} ${markText(last, S.panels[0] && S.panels[0].panel)}`;
  const turned = [S.view.rot ? `rotated ${90 * S.view.rot}°` : "", S.view.flip ? "flipped" : "", S.settings.invert ? "inverted" : ""].filter(Boolean);
  if (turned.length) text += ` · ${turned.join(", ")}`;
  if (f.orientation && f.orientation.assumed && S.settings.markers) text += " · L/R assumed (chest film convention)";
  out.textContent = text;
}

/* ---------- interaction: wheel zoom, drag pan or window/level, click to choose ---------- */

function attach(view) {
  const canvas = view.canvas;
  let drag = null;
  const filmPoint = e => {
    const r = canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    const p = matrixOf(canvas).inverse().transformPoint(new DOMPoint((e.clientX - r.left) * dpr, (e.clientY - r.top) * dpr));
    return [p.x, p.y];
  };
  const hover = e => {  // what the readout shows: the film point under the cursor now
    const [fx, fy] = filmPoint(e), f = S.film;
    S.cursor = fx >= 0 && fy >= 0 && fx < f.w && fy < f.h ? { fx, fy, view, panel: view.panel, value: sample(view.panel, fx, fy) } : null;
    return [fx, fy];
  };
  canvas.addEventListener("wheel", e => {
    e.preventDefault();
    const [fx, fy] = filmPoint(e), f = S.film;
    const factor = Math.exp(-e.deltaY * 0.0015), zoom = Math.min(40, Math.max(0.5, S.view.zoom * factor));
    const cx = S.view.cx ?? f.w / 2, cy = S.view.cy ?? f.h / 2, k = S.view.zoom / zoom;
    // the point under the cursor stays (in film pixels, whatever the rotation)
    S.view = Object.assign({}, S.view, { zoom, cx: fx + (cx - fx) * k, cy: fy + (cy - fy) * k });
    hover(e);  // the readout follows the zoom, not the last move
    redraw();
  }, { passive: false });
  canvas.addEventListener("contextmenu", e => e.preventDefault());
  canvas.addEventListener("pointerdown", e => {
    canvas.setPointerCapture(e.pointerId);
    const mode = e.button === 2 || e.shiftKey || S.tool === "wl" ? "wl"
      : S.tool === "measure" || S.tool === "roi" ? "mark" : "pan";
    const [c, w] = windowOf();
    drag = { x: e.clientX, y: e.clientY, mode, view: Object.assign({}, S.view), c, w, moved: false };
    if (mode === "mark") {
      const f = S.film, q = filmPoint(e), p = [Math.min(f.w, Math.max(0, q[0])), Math.min(f.h, Math.max(0, q[1]))];
      drag.mark = { type: S.tool === "measure" ? "line" : "rect", a: p, b: p };
      S.marks.push(drag.mark);
    }
  });
  canvas.addEventListener("pointermove", e => {
    const [fx, fy] = hover(e), f = S.film;
    if (drag) {
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      if (drag.mode === "pan") {
        const dpr = window.devicePixelRatio || 1, f0 = drag.view;
        const [ddx, ddy] = filmDelta(canvas, dx * dpr, dy * dpr);
        S.view = Object.assign({}, f0, { cx: (f0.cx ?? f.w / 2) - ddx, cy: (f0.cy ?? f.h / 2) - ddy });
      } else if (drag.mode === "mark") {
        drag.mark.b = [Math.min(f.w, Math.max(0, fx)), Math.min(f.h, Math.max(0, fy))];
        drag.mark.film = null;
      } else {  // right or shift drag: horizontal = width, vertical = level (as in OHIF and Weasis)
        const span = Math.max(f.hi - f.lo, 1), per = span / 400;
        setWindow(drag.c + dy * per, Math.max(1, drag.w + dx * per));
      }
    }
    redraw();
  });
  canvas.addEventListener("pointerleave", () => { S.cursor = null; redraw(); });
  canvas.addEventListener("pointerup", () => {
    if (drag && drag.mode === "mark" && !drag.moved) S.marks.pop();  // a click, not a drag: no mark
    if (drag && !drag.moved && view.choose) view.choose();
    if (drag && drag.mode === "wl") commit();
    drag = null;
  });
  canvas.addEventListener("dblclick", () => { S.view = Object.assign({}, S.view, { zoom: 1, cx: null, cy: null }); redraw(); });
}

function setWindow(center, width) {
  const f = S.film, span = Math.max(f.hi - f.lo, 1);
  S.settings.window = { cf: (center - f.lo) / span, wf: width / span };
  S.dirty = true;  // sent when the drag ends
  syncControls();
  redraw();
}

/* ---------- settings kept by Python across images and pages ---------- */

let timer = null;
function send() {
  clearTimeout(timer);
  timer = null;
  if (!S.dirty) return;
  S.settings.seq = (S.settings.seq || 0) + 1;  // Python keeps the newest; the browser ignores older replies
  S.lastSent = JSON.stringify(S.settings);
  S.dirty = false;
  ST.value(Object.assign({}, S.settings));
}

function commit() {  // debounced: the display has already changed; Python only keeps the choice
  S.dirty = true;  // until sent, nothing from Python replaces the user's change
  clearTimeout(timer);
  timer = setTimeout(send, 400);
}
window.addEventListener("pagehide", send);  // leaving the page: what is pending goes now

function change(patch, rebuild = false) {
  Object.assign(S.settings, patch);
  if (rebuild) build(); else { syncControls(); redraw(); }
  commit();
}

/* ---------- the page: toolbar, panels, playback, curve ---------- */

function toolbar() {
  const a = S.args, s = S.settings, bar = el("div", { class: "bar" });
  if (a.layout === "explorer") {
    const select = el("select", { id: "method", onchange: e => change({ method: e.target.value }, true) },
      ...a.panels.map(p => el("option", { value: p.key }, p.label)));
    bar.append(el("label", {}, "Method", select));
  }
  bar.append(el("label", {}, "Opacity", el("input", { id: "opacity", type: "range", min: 0, max: 1, step: 0.05,
    oninput: e => change({ opacity: +e.target.value }) })));
  bar.append(el("label", {}, "Colormap", el("select", { id: "cmap", onchange: e => change({ cmap: e.target.value }) },
    ...a.cmaps.map(c => el("option", { value: c }, c)))));
  const mode = el("select", { id: "mode", onchange: e => change({ mode: e.target.value }) },
    el("option", { value: "fade", title: `low values transparent, fading in up to ${FADE_END}` }, "fade in low values"),
    el("option", { value: "all" }, "all values"), el("option", { value: "threshold" }, "above threshold"),
    el("option", { value: "top" }, "top k %"));
  bar.append(el("label", {}, "Show", mode,
    el("input", { id: "threshold", type: "number", min: 0, max: 1, step: 0.05, title: "threshold (map values are in [0, 1])",
                  onchange: e => change({ threshold: Math.min(1, Math.max(0, +e.target.value)) }) }),
    el("input", { id: "top", type: "number", min: 1, max: 100, step: 1, title: "top k %",
                  onchange: e => change({ top: Math.min(100, Math.max(1, Math.round(+e.target.value))) }) })));
  const presets = el("span", { class: "group", id: "presets" }, "Window ");
  for (const name of Object.keys(S.film.presets))
    presets.append(el("button", { "data-preset": name, title: S.film.presetHelp[name] || "",
      onclick: () => change({ window: { preset: name } }) }, name));
  bar.append(presets);
  const tool = (id, name, label, title) => el("button", { id, title, onclick: () => setTool(name) }, label);
  bar.append(el("span", { class: "group" }, "Drag ",
    tool("tool-pan", "pan", "pan", "drag to pan (P)"),
    tool("tool-wl", "wl", "window", "drag: horizontal = width, vertical = level; or drag with the right button / shift (W)"),
    tool("tool-measure", "measure", "distance", "drag to measure a distance, in mm where the film has a pixel spacing (M)"),
    tool("tool-roi", "roi", "ROI", "drag a rectangle: mean ± SD of the film's values, its area, the map's mean inside (O)"),
    el("button", { id: "clear-marks", title: "remove the distances and ROIs (Esc)", onclick: () => { S.marks = []; redraw(); } }, "clear")));
  bar.append(el("span", { class: "group" }, "View ",
    el("button", { id: "invert", title: "invert the film's grey scale (I)", onclick: () => change({ invert: !S.settings.invert }) }, "invert"),
    el("button", { id: "flip", title: "flip left–right (H)", onclick: () => turn(0, true) }, "flip ↔"),
    el("button", { id: "rotate", title: "rotate 90° clockwise (R)", onclick: () => turn(1, false) }, "rotate ⟳")));
  bar.append(el("label", {}, el("input", { id: "gt", type: "checkbox", onchange: e => change({ gt: e.target.checked }) }), "ground truth"));
  bar.append(el("label", { title: S.film.orientation ? S.film.orientation.source : "the file does not say the patient's orientation" },
    el("input", { id: "markers", type: "checkbox", disabled: !S.film.orientation, onchange: e => change({ markers: e.target.checked }) }), "L/R markers"));
  bar.append(el("span", { class: "group" },
    el("button", { id: "one", title: "one stored pixel per screen pixel", onclick: () => {
      const v = S.panels[0] && S.panels[0].canvas;
      if (v) { S.view = Object.assign({}, S.view, { zoom: 1 / fitScale(v) }); redraw(); }
    } }, "1:1"),
    el("button", { id: "reset", title: "fit the film to the panel (F)", onclick: () => fit() }, "fit"),
    el("button", { id: "fullscreen", title: "the main panel over the whole screen, at full resolution",
      onclick: () => { const m = document.getElementById("stage");
        if (document.fullscreenElement) document.exitFullscreen(); else if (m && m.requestFullscreen) m.requestFullscreen(); } },
      "fullscreen"),
    el("button", { id: "keys", title: KEYS_HELP, onclick: e => { const n = document.getElementById("keys-help");
      n.style.display = n.style.display === "none" ? "" : "none"; ST.height(document.body.scrollHeight + 4); } }, "⌨ keys")));
  return bar;
}

const KEYS_HELP = "← → or PgUp PgDn: previous / next image (← → step the states where they play) · ↑ ↓: previous / " +
  "next method · 1–9: window presets, 0: the file's own window · I invert · H flip · R rotate · F fit · G ground " +
  "truth · L markers · P pan · W window · M distance · O ROI · Esc clear marks · Space play / pause";

function setTool(name) { S.tool = name; syncControls(); }

function fit() { S.view = Object.assign({}, S.view, { zoom: 1, cx: null, cy: null }); redraw(); }

function turn(quarters, flip) {  // rotation and flip of the view (this film's: a new film opens upright)
  // a flip is left–right on screen: after a turn by θ, flipping the film and turning by −θ is that flip
  const rot = flip ? (4 - S.view.rot) % 4 : (S.view.rot + quarters) % 4;
  S.view = Object.assign({}, S.view, { rot, flip: flip ? !S.view.flip : S.view.flip });
  syncControls(); redraw();
}

function syncControls() {
  const s = S.settings, set = (id, prop, v) => { const n = document.getElementById(id); if (n) n[prop] = v; };
  set("method", "value", s.method); set("opacity", "value", s.opacity); set("cmap", "value", s.cmap);
  set("mode", "value", s.mode); set("threshold", "value", s.threshold); set("top", "value", s.top);
  set("gt", "checked", s.gt); set("markers", "checked", !!(s.markers && S.film.orientation));
  document.getElementById("invert")?.classList.toggle("on", !!s.invert);
  document.getElementById("flip")?.classList.toggle("on", !!S.view.flip);
  document.getElementById("rotate")?.classList.toggle("on", S.view.rot !== 0);
  const show = (id, on) => { const n = document.getElementById(id); if (n) n.style.display = on ? "" : "none"; };
  show("threshold", s.mode === "threshold"); show("top", s.mode === "top");
  document.querySelectorAll("#presets button").forEach(b =>
    b.classList.toggle("on", !!(s.window && s.window.preset === b.dataset.preset)));
  document.getElementById("tool-pan")?.classList.toggle("on", S.tool === "pan");
  document.getElementById("tool-wl")?.classList.toggle("on", S.tool === "wl");
  document.getElementById("tool-measure")?.classList.toggle("on", S.tool === "measure");
  document.getElementById("tool-roi")?.classList.toggle("on", S.tool === "roi");
}

function panelBox(panel, height, choose, extraClass = "") {
  const canvas = el("canvas");
  const box = el("div", { class: "panel " + extraClass, style: `height:${height}px` }, canvas,
    el("div", { class: "tag" }, panel ? panel.label + (panel.caption ? " · " + panel.caption : "") : ""));
  if (panel && panel.flag) box.append(el("div", { class: "flag" }, panel.flag));
  const view = { canvas, panel, choose, box };
  attach(view);
  S.panels.push(view);
  return box;
}

function mainArea(panels, height) {
  const cbar = el("div", { class: "colorbar" }, el("span", { id: "cbar-top" }, "1"), el("canvas", { id: "cbar" }),
    el("span", { id: "cbar-bottom" }, "0"), el("span", {}, "map value"));
  const main = el("div", { id: "main", class: "main" });
  const width = `calc((100% - ${70 + 8 * (panels.length - 1)}px) / ${panels.length})`;
  for (const p of panels) {
    const box = panelBox(p, height);
    box.style.flex = `0 0 ${width}`;
    main.append(box);
  }
  main.append(cbar);
  return main;
}

function build() {
  const a = S.args, s = S.settings, root = document.getElementById("root");
  S.panels = [];
  let stage = document.getElementById("stage");  // what fullscreen shows: controls, panels, readout
  if (stage) {  // kept (not replaced), so that a rebuild in fullscreen stays in fullscreen
    stage.replaceChildren(toolbar());
    [...root.children].filter(c => c !== stage).forEach(c => c.remove());
  } else {
    stage = el("div", { id: "stage" }, toolbar());
    root.replaceChildren(stage);
  }
  stage.append(el("div", { id: "keys-help", class: "caption", style: "display:none" }, "Keys (click the viewer first): " + KEYS_HELP));
  if (a.layout === "explorer") {
    const chosen = panelByKey(a.panels, s.method);
    stage.append(mainArea([chosen], a.height));
    stage.append(el("div", { id: "readout", class: "readout" }));
    const cols = a.columns || 4, grid = el("div", { class: "grid", style: `grid-template-columns:repeat(${cols}, 1fr)` });
    const side = Math.floor((root.clientWidth - 8 * (cols - 1)) / cols);
    for (const p of a.panels) {
      const box = panelBox(p, side, () => change({ method: p.key }, true), p.key === chosen.key ? "selected" : "");
      grid.append(el("div", {}, box));
    }
    root.append(grid);
  } else if (a.layout === "states") {  // the panels on the left, the SSIM curve beside them (in view with them)
    const left = el("div", { class: "states-left" });
    left.append(el("div", { class: "row-title" }, a.reference_title || "original"));
    left.append(mainArea(a.panels, a.height));
    const frame = a.frames[S.frame];
    const slider = el("input", { id: "frame", type: "range", min: 0, max: a.frames.length - 1, step: 1, value: S.frame,
      oninput: e => showFrame(+e.target.value) });
    const play = el("button", { id: "play", onclick: () => togglePlay() }, S.playing ? "❚❚ pause" : "▶ play");
    left.append(el("div", { class: "frames" }, play, slider, el("span", { id: "state-label", class: "state-label" }, frame.label)));
    const row = mainArea(frame.panels, a.height);
    row.id = "current"; row.querySelector(".colorbar").remove();
    left.append(row);
    left.append(el("div", { id: "readout", class: "readout" }));
    const states = el("div", { class: "states" }, left);
    if (a.curve) states.append(el("div", { class: "states-right" }, curve(a.curve)));
    stage.append(states);
  } else {
    stage.append(mainArea(a.panels, a.height));
    stage.append(el("div", { id: "readout", class: "readout" }));
  }
  syncControls();
  if (document.fullscreenElement === stage) fitStage(); else drawAll();
  ST.height(document.body.scrollHeight + 4);
}

function fitStage() {  // fullscreen: the panel rows share the screen's height; back: the page's height
  const stage = document.getElementById("stage"), full = document.fullscreenElement === stage;
  const rows = ["main", "current"].map(id => document.getElementById(id)).filter(Boolean);
  const boxes = row => [...row.querySelectorAll(".panel")];
  rows.forEach(row => boxes(row).forEach(b => { b.style.height = `${S.args.height}px`; }));
  if (full) {
    const other = stage.scrollHeight - rows.reduce((t, r) => t + r.offsetHeight, 0);
    const each = Math.max(120, Math.floor((window.innerHeight - other - 12) / rows.length));
    rows.forEach(row => boxes(row).forEach(b => { b.style.height = `${each}px`; }));
  }
  redraw();
}

function showFrame(index) {  // label, slider, frames and curve cursor change together, in one draw
  S.frame = index;
  const frame = S.args.frames[index], views = S.panels.slice(S.args.panels.length);
  views.forEach((view, k) => {
    view.panel = frame.panels[k];
    view.box.querySelector(".tag").textContent = view.panel.label + (view.panel.caption ? " · " + view.panel.caption : "");
    const flag = view.box.querySelector(".flag");
    if (flag) flag.remove();
    if (view.panel.flag) view.box.append(el("div", { class: "flag" }, view.panel.flag));
  });
  document.getElementById("state-label").textContent = frame.label;
  document.getElementById("frame").value = index;
  const cursor = document.getElementById("curve-cursor");
  if (cursor) cursor.setAttribute("transform", `translate(${S.curveX(index)},0)`);
  S.frameShownAt = performance.now();
  redraw();
}

function togglePlay() {
  if (S.playing) { clearInterval(S.playing); S.playing = null; }
  else S.playing = setInterval(() => showFrame((S.frame + 1) % S.args.frames.length), 1000);
  document.getElementById("play").textContent = S.playing ? "❚❚ pause" : "▶ play";
}

function curve(c) {  // this image's SSIM curve and the cohort's, with baselines, and a cursor at the frame
  // L leaves room for the first state's label, which turns left from the first tick ("0: original")
  const W = 560, H = 300, L = 72, R = 10, T = 10, B = 64, n = c.xlabels.length;  // beside the panels: ~its shown size
  const x = i => L + (W - L - R) * (n > 1 ? i / (n - 1) : 0.5), y = v => T + (H - T - B) * (1.05 - v) / 1.25;
  S.curveX = x;
  const ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("width", "100%"); svg.setAttribute("id", "curve");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node); return node;
  };
  for (const v of [0, 0.5, 1]) {
    add("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e6e6e6" });
    add("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(1));
  }
  c.xlabels.forEach((label, i) => add("text", { x: x(i), y: H - B + 14, "text-anchor": "end",
    transform: `rotate(-35 ${x(i)} ${H - B + 14})` }, label));
  add("text", { x: 30, y: T + 90, transform: `rotate(-90 30 ${T + 90})` }, c.ylabel || "SSIM to original");
  // the legend: a row per method ("Gradient — this image / cohort mean / random-pair baseline"), its swatches
  const legend = el("div", { class: "legend" }), rows = new Map();
  for (const s of c.series) {
    const points = s.values.map((v, i) => v === null ? null : `${x(s.x ? s.x[i] : i)},${y(v)}`).filter(Boolean).join(" ");
    add("polyline", { points, fill: "none", stroke: s.color, "stroke-width": s.width || 2,
                      "stroke-dasharray": s.dash === "dot" ? "2 3" : s.dash === "dash" ? "7 4" : "" });
    const swatch = document.createElementNS(ns, "svg");
    swatch.setAttribute("width", 26); swatch.setAttribute("height", 8);
    swatch.innerHTML = `<line x1="0" x2="26" y1="4" y2="4" stroke="${s.color}" stroke-width="2" stroke-dasharray="${s.dash === "dot" ? "2 3" : s.dash === "dash" ? "7 4" : ""}"/>`;
    const [who, what] = s.name.includes(" — ") ? s.name.split(" — ") : [s.name, ""];
    if (!rows.has(who)) { rows.set(who, el("div", { class: "legend-row" }, el("b", {}, who))); legend.append(rows.get(who)); }
    rows.get(who).append(el("span", { title: s.name }, swatch, what || who));
  }
  const cursor = add("g", { id: "curve-cursor", transform: `translate(${x(S.frame)},0)` });
  const line = document.createElementNS(ns, "line");
  for (const [k, v] of Object.entries({ x1: 0, x2: 0, y1: T, y2: H - B, stroke: "#ff4b4b", "stroke-width": 2 })) line.setAttribute(k, v);
  cursor.append(line);
  return el("div", {}, svg, legend);
}

/* ---------- keyboard ---------- */

function navigate(step) {  // previous / next image: Python chooses it (the page's image list), once per press
  S.navSeq += 1;
  clearTimeout(timer);  // a change still waiting for its debounce goes with it (one value carries both)
  if (S.dirty) { S.settings.seq = (S.settings.seq || 0) + 1; S.lastSent = JSON.stringify(S.settings); S.dirty = false; }
  ST.value(Object.assign({}, S.settings, { nav: { step, token: `${Date.now()}-${S.navSeq}` } }));
}

function stepMethod(step) {
  const keys = S.args.panels.map(p => p.key), k = keys.indexOf(S.settings.method);
  change({ method: keys[(Math.max(0, k) + step + keys.length) % keys.length] }, true);
}

document.addEventListener("keydown", e => {
  const t = e.target, typing = t.tagName === "SELECT" || t.tagName === "TEXTAREA" ||
    (t.tagName === "INPUT" && /^(text|number|search)$/.test(t.type));  // a checkbox or slider keeps the keys
  if (!S.args || e.ctrlKey || e.metaKey || e.altKey || typing) return;
  const states = S.args.layout === "states", presets = Object.keys(S.film.presets);
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  const actions = {
    ArrowLeft: () => states ? showFrame((S.frame - 1 + S.args.frames.length) % S.args.frames.length) : navigate(-1),
    ArrowRight: () => states ? showFrame((S.frame + 1) % S.args.frames.length) : navigate(1),
    PageUp: () => navigate(-1), PageDown: () => navigate(1),
    ArrowUp: S.args.layout === "explorer" ? () => stepMethod(-1) : null,
    ArrowDown: S.args.layout === "explorer" ? () => stepMethod(1) : null,
    i: () => change({ invert: !S.settings.invert }), h: () => turn(0, true), r: () => turn(1, false), f: fit,
    g: () => change({ gt: !S.settings.gt }), l: () => S.film.orientation && change({ markers: !S.settings.markers }),
    p: () => setTool("pan"), w: () => setTool("wl"), m: () => setTool("measure"), o: () => setTool("roi"),
    Escape: () => { S.marks = []; redraw(); }, " ": states ? togglePlay : null,
    0: () => change({ window: { preset: "default" } }),
  };
  if (/^[1-9]$/.test(key) && presets[+key - 1]) actions[key] = () => change({ window: { preset: presets[+key - 1] } });
  const action = actions[key];
  if (!action) return;
  e.preventDefault();
  action();
});

/* ---------- the component protocol ---------- */

function newer(incoming) {
  /* Settings from Python replace the browser's only when no change of its own is pending, they are not an
     older reply to its own changes (their sequence number is not behind) and they differ from what it shows. */
  if (S.settings === null) return true;
  if (S.dirty || incoming === S.lastReceived || incoming === S.lastSent) return false;
  const seq = JSON.parse(incoming).seq || 0;
  return seq >= (S.settings.seq || 0) && incoming !== JSON.stringify(S.settings);
}

async function onRender(args) {
  const received = Date.now();  // (for the latency bench: when a new film arrived, was decoded, was painted)
  const incoming = JSON.stringify(args.settings);
  if (args.data_key !== S.dataKey) {  // new film or maps: decode once
    S.dataKey = args.data_key;
    S.timing = { key: args.data_key, received };
    const film = await decode(args.film);
    const maps = {};
    const all = [args.panels, ...(args.frames || []).map(f => f.panels)].flat();
    await Promise.all(all.map(async p => { if (p.map) maps[p.key] = await decode(p.map); }));
    if (args.data_key !== S.dataKey) return;  // a newer film arrived while this one decoded
    Object.assign(film, { lo: args.film.lo, hi: args.film.hi, presets: args.film.presets,
                          presetHelp: args.film.preset_help || {} });
    const first = S.args === null;
    S.args = args; S.film = film; S.maps = maps; S.mapCanvases = {}; S.filmCanvas = null; S.filmSig = null;
    if (first || S.settings === null || newer(incoming)) S.settings = JSON.parse(incoming);
    const sameFilm = !first && S.filmData === args.film.data;  // other maps over the same film (another class)
    S.filmData = args.film.data;
    if (!first && !sameFilm) {
      S.view = { zoom: 1, cx: null, cy: null, rot: 0, flip: false };  // a new film opens fitted, upright
      S.marks = [];  // a film's distances and ROIs are its own
    }
    S.frame = Math.min(S.frame, Math.max(0, (args.frames || []).length - 1));
    focus(args);
    S.timing.decoded = Date.now();
    S.lastReceived = incoming;
    build();
    S.timing.built = Date.now();
    requestAnimationFrame(() => { S.timing.painted = Date.now(); });  // the new film on screen
    return;
  }
  if (S.args === null) return;  // this film is still being decoded
  if (focus(args)) showFrame(S.frame);
  if (newer(incoming)) {  // a choice made elsewhere (a click on Metrics)
    S.lastReceived = incoming;
    S.settings = JSON.parse(incoming);
    build();
  }
}

function focus(args) {  // a click elsewhere asks for a frame, once per token
  const f = args.focus;
  if (!f || f.token === S.focusToken || !(args.frames || S.args.frames)) return false;
  S.focusToken = f.token;
  S.frame = Math.min(f.frame, (args.frames || S.args.frames).length - 1);
  return true;
}


window.addEventListener("message", e => {
  if (e.data && e.data.type === "streamlit:render") onRender(e.data.args).catch(err => {
    document.getElementById("root").textContent = "The viewer could not show this image: " + err;
  });
});
window.addEventListener("resize", () => { if (S.args) { redraw(); } });
document.addEventListener("fullscreenchange", fitStage);
ST.ready();
