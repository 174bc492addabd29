// numvae explorer: one training step, forward then backward, node by node on a graph,
// each gradient computed by the page and checked by central differences in the page.
"use strict";
const SVG = "http://www.w3.org/2000/svg";

function short(name) { return name.replace("encoder.compressor.", "enc.").replace("decoder.decompressor.", "dec."); }

function heat(canvas, m, side) {
  // a value as a picture: rows of images when a row is an image, else a blue-white-red map
  const ctx = canvas.getContext("2d");
  let big = 0; for (const v of m.d) big = Math.max(big, Math.abs(v));  // a loop: no spread of 200,000 arguments
  big = big || 1;
  const images = m.c === side * side && side > 1;
  const w = images ? side * m.r : m.c, h = images ? side : m.r;
  const small = document.createElement("canvas"); small.width = w; small.height = h;
  const sctx = small.getContext("2d"), img = sctx.createImageData(w, h);
  for (let i = 0; i < m.r; i++) for (let j = 0; j < m.c; j++) {
    const v = m.d[i * m.c + j] / big;
    const px = images ? i * side + (j % side) : j, py = images ? Math.floor(j / side) : i;
    const rgb = v >= 0 ? [255, 255 * (1 - v), 255 * (1 - v)] : [255 * (1 + v), 255 * (1 + v), 255];
    img.data.set([...rgb, 255], 4 * (py * w + px));
  }
  sctx.putImageData(img, 0, 0);
  canvas.width = Math.min(480, Math.max(w, 60) * (w < 120 ? 4 : 1));
  canvas.height = Math.min(160, Math.max(h * canvas.width / w, 24));
  ctx.imageSmoothingEnabled = false; ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
}

class Step {
  constructor(app) {
    this.app = app; this.P = app.P; const s = app.bundle.step;
    const x = NV.asMatrix(s.x);
    this.batch = {x, y: Array.from(NV.unpack(s.y).d), eps: NV.asMatrix(s.eps)};
    this.rows = s.rows; this.at = -1;
    const t0 = performance.now(); this.result = NV.step(this.P, this.batch); this.ms = performance.now() - t0;
    this.layout(); this.drawGraph();
    document.getElementById("step-next").onclick = () => this.go(this.at + 1);
    document.getElementById("step-back").onclick = () => this.go(this.at - 1);
    document.getElementById("step-check").onclick = () => this.showCheck();
    this.go(0);
  }
  value(name) { return this.result.F.N[name] || this.result.G[name]; }
  node(rowName) {  // the graph node a row belongs to
    let n = rowName.replace(/^d /, "").replace(/ \(from (z|KL)\)$/, "").replace(/ \(grad\)$/, "").replace(/\.(W|b)$/, "");
    const last = this.P.dec.length;
    if (n === "logits") n = `decoder.decompressor.${last - 1}`;
    if (n === "output") n = `decoder.decompressor.${last}`;
    return n.replace(/^encoder\.(mean|log_var)$/, "$1");
  }
  layout() {  // columns of nodes, left to right in the order the forward pass computes them
    const f = this.rows.filter(r => r.phase === "forward").map(r => r.name), cols = [];
    const col = names => cols.push(names.filter(n => f.includes(n)));
    col(["x", "onehot(y)"]);
    f.filter(n => n.startsWith("encoder.")).forEach(n => col([n]));
    col(["mean", "log_var"]); col(["std", "eps"]); col(["z"]);
    f.filter(n => n.startsWith("decoder.")).forEach(n => col([n]));
    col(["reconstruction", "kl"]); col(["loss"]);
    this.pos = {};
    cols.forEach((names, i) => names.forEach((n, j) => { this.pos[n] = [20 + i * 96, 30 + j * 62 + (names.length === 1 ? 31 : 0)]; }));
    this.width = 40 + cols.length * 96;
    const enc = f.filter(n => n.startsWith("encoder.")), dec = f.filter(n => n.startsWith("decoder."));
    const chain = (a, b) => a.slice(1).map((n, i) => [a[i], n]).concat(b ? [[a[a.length - 1], b]] : []);
    this.edges = [["x", enc[0]], ...chain(enc), [enc[enc.length - 1], "mean"], [enc[enc.length - 1], "log_var"],
      ["log_var", "std"], ["mean", "z"], ["std", "z"], ["eps", "z"], ["z", dec[0]], ...chain(dec),
      [dec[dec.length - 1], "reconstruction"], ["x", "reconstruction"], ["mean", "kl"], ["log_var", "kl"],
      ["reconstruction", "loss"], ["kl", "loss"]];
    if (f.includes("onehot(y)")) this.edges.push(["onehot(y)", enc[0]], ["onehot(y)", dec[0]]);
    if (this.app.bundle.step.kl !== "GaussianKL") this.edges.push(["z", "kl"]);
  }
  drawGraph() {
    const svg = document.getElementById("step-graph");
    svg.setAttribute("viewBox", `0 0 ${this.width} 135`);
    const el = (tag, attrs, text) => { const e = document.createElementNS(SVG, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text) e.textContent = text; svg.append(e); return e; };
    for (const [a, b] of this.edges) {
      if (!this.pos[a] || !this.pos[b]) continue;
      const [x1, y1] = this.pos[a], [x2, y2] = this.pos[b];
      el("line", {x1: x1 + 80, y1: y1 + 17, x2, y2: y2 + 17, class: "edge"});
    }
    this.boxes = {};
    for (const n in this.pos) {
      const [x, y] = this.pos[n];
      this.boxes[n] = el("rect", {x, y, width: 80, height: 34, rx: 5, class: "node", "data-name": n});
      el("text", {x: x + 40, y: y + 21, class: "label"}, short(n));
      this.boxes[n].addEventListener("click", () => this.go(this.rows.findIndex(r => r.name === n)));
    }
  }
  go(i) {
    if (i < 0 || i >= this.rows.length) return;
    this.at = i;
    const row = this.rows[i], here = this.node(row.name);
    for (const n in this.boxes) {
      const done = this.rows.slice(0, i + 1).filter(r => this.node(r.name) === n);
      this.boxes[n].setAttribute("class", "node" + (done.some(r => r.phase === "backward") ? " back" : done.length ? " fwd" : "") + (n === here ? " here" : ""));
    }
    this.detail(row);
  }
  detail(row) {
    const v = this.value(row.name), s = row.stats, d = document.getElementById("step-detail");
    const mine = {mean: 0, min: Infinity, max: -Infinity};
    v.d.forEach(a => { mine.mean += a / v.d.length; mine.min = Math.min(mine.min, a); mine.max = Math.max(mine.max, a); });
    const g = a => (Math.abs(a) < 1e-3 || Math.abs(a) >= 1e4 ? a.toExponential(4) : a.toFixed(6));
    d.innerHTML = `<p class="step-name">${this.at + 1} / ${this.rows.length} &middot; ${row.phase} &middot; <b>${row.name}</b></p>
      <p class="formula">${row.formula.replace(/\s+(\(([A-Z]+\d+[, ]*)+.*\))$/, " <span class=\"eq\">$1</span>")}</p>
      <p>shape (${row.shape.join(", ")})</p>
      <table><tr><th></th><th>mean</th><th>min</th><th>max</th></tr>
      <tr><td>this page</td><td>${g(mine.mean)}</td><td>${g(mine.min)}</td><td>${g(mine.max)}</td></tr>
      <tr><td>numvae inspect</td><td>${g(s.mean)}</td><td>${g(s.min)}</td><td>${g(s.max)}</td></tr></table>
      <canvas id="step-picture"></canvas><div id="step-fd"></div>`;
    heat(document.getElementById("step-picture"), v, Math.round(Math.sqrt(this.P.inputDim)));
    document.getElementById("step-check").disabled = row.phase !== "backward";
  }
  check(name, nEntries, seed) { return NV.check(this.P, this.batch, name, this.value(name), nEntries || 5, seed || 0); }
  showCheck() {
    const row = this.rows[this.at], r = this.check(row.name);
    document.getElementById("step-fd").innerHTML = `<table><tr><th>entry</th><th>page's gradient</th><th>central difference (h = 1e-5)</th></tr>` +
      r.entries.map(e => `<tr><td>${e.index}</td><td>${e.analytic.toExponential(6)}</td><td>${e.numeric.toExponential(6)}</td></tr>`).join("") +
      `</table><p>relative error ${r.error.toExponential(1)} (below 1e-6 is agreement, eq. C1)</p>`;
  }
}

function b64(array) {  // a Float64Array as base64, for the tests to read the page's numbers
  const bytes = new Uint8Array(Float64Array.from(array).buffer); let s = "";
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return btoa(s);
}

window.addEventListener("DOMContentLoaded", () => {
  const bundle = JSON.parse(document.getElementById("numvae-data").textContent);
  const app = {bundle, P: NV.load(bundle)};
  for (const panel in bundle.missing) {
    const box = document.getElementById(`${panel}-missing`);
    box.textContent = `Not drawn: ${bundle.missing[panel]}.`; box.hidden = false;
  }
  app.plane = new Plane(app);
  if (!bundle.missing.encode) app.encoder = new Encoder(app); else document.getElementById("encode-body").hidden = true;
  if (!bundle.missing.step) app.step = new Step(app); else document.getElementById("step-body").hidden = true;
  const pack = m => ({shape: [m.r, m.c], data: b64(m.d)});
  window.numvaeExplorer = {
    app,
    decode: (zs, ys) => pack(NV.decode(app.P, NV.matrix(zs.length, app.P.latent, Float64Array.from(zs.flat())), ys)),
    encode: (xs, ys) => { const h = NV.encode(app.P, NV.matrix(xs.length, app.P.inputDim, Float64Array.from(xs.flat())), ys); return {mean: pack(h.mean), log_var: pack(h.log_var)}; },
    exportStep: () => { const out = {}, r = app.step.result; for (const k in r.F.N) out[k] = pack(r.F.N[k]); for (const k in r.G) out[k] = pack(r.G[k]); return out; },
    check: (name, n, seed) => app.step.check(name, n, seed),
    timeStep: repeats => { const t = []; for (let i = 0; i < repeats; i++) { const t0 = performance.now(); NV.step(app.P, app.step.batch); t.push(performance.now() - t0); } return t; },
    timeDecodeOnly: repeats => { const t = []; for (let i = 0; i < repeats; i++) { const t0 = performance.now(); app.plane.decodePoint(app.plane.latentPoint([Math.sin(i), Math.cos(i)])); t.push(performance.now() - t0); } return t; },
    timeDecode: repeats => { const t = []; for (let i = 0; i < repeats; i++) { const t0 = performance.now(); app.plane.pointAt([Math.sin(i), Math.cos(i)]); t.push(performance.now() - t0); } return t; },
  };
  document.body.dataset.ready = "yes";
});
