// numvae explorer: the latent plane (test means, the prior, the point under the pointer
// decoded live) and the Encode panel (a drawn or picked digit's Gaussian on the plane).
"use strict";
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf"];

function drawImage(canvas, values, side) {
  // values in [0, 1], side x side pixels, scaled up without smoothing
  const small = document.createElement("canvas");
  small.width = small.height = side;
  const ctx = small.getContext("2d"), img = ctx.createImageData(side, side);
  for (let i = 0; i < side * side; i++) {
    const v = 255 - Math.round(255 * Math.min(1, Math.max(0, values[i])));
    img.data.set([v, v, v, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
  const big = canvas.getContext("2d");
  big.imageSmoothingEnabled = false;
  big.drawImage(small, 0, 0, canvas.width, canvas.height);
}

class Plane {
  constructor(app) {
    this.app = app; this.P = app.P; this.L = app.P.latent;
    this.base = document.getElementById("plane-base");
    this.over = document.getElementById("plane-over");
    this.out = document.getElementById("plane-decoded");
    this.dims = [0, 1]; this.rest = new Array(this.L).fill(0); this.label = 0; this.marks = null;
    this.means = NV.unpack(app.bundle.test.means).d; this.labels = NV.unpack(app.bundle.test.labels).d;
    this.controls();
    this.fit(); this.drawBase();
    this.live = !app.bundle.missing.plane;
    if (this.live) {
      this.over.addEventListener("mousemove", e => this.pointer(e));
      this.pointAt([0, 0]);
    }
  }
  controls() {
    const box = document.getElementById("plane-controls");
    if (this.P.nClasses) {
      const sel = document.createElement("select"); sel.id = "digit";
      for (let c = 0; c < this.P.nClasses; c++) sel.add(new Option(`digit ${c}`, c));
      sel.onchange = () => { this.label = +sel.value; this.pointAt(this.last || [0, 0]); this.app.encoder && this.app.encoder.run(); };
      box.append("Conditional model: decode as ", sel);
    }
    if (this.L <= 2) return;
    for (const axis of [0, 1]) {
      const sel = document.createElement("select"); sel.id = `dim-${axis}`;
      for (let j = 0; j < this.L; j++) sel.add(new Option(`z${j + 1}`, j));
      sel.value = this.dims[axis];
      sel.onchange = () => { this.dims[axis] = +sel.value; this.fit(); this.drawBase(); this.pointAt(this.last || [0, 0]); };
      box.append(axis ? " vertical " : "Shown: horizontal ", sel);
    }
    const sliders = document.createElement("div");
    for (let j = 0; j < this.L; j++) {
      const s = document.createElement("input");
      Object.assign(s, {type: "range", min: -3, max: 3, step: 0.05, value: 0, id: `slider-${j}`});
      s.oninput = () => { this.rest[j] = +s.value; this.pointAt(this.last || [0, 0]); };
      const lab = document.createElement("label"); lab.append(`z${j + 1} `, s);
      sliders.append(lab);
    }
    box.append(sliders, "(the sliders set the dimensions not shown on the plane)");
  }
  fit() {  // a square view around the origin holding 99% of the means and the prior's 2 sigma
    const xs = [];
    for (let i = 0; i < this.labels.length; i++)
      for (const j of this.dims) xs.push(Math.abs(this.means[i * this.L + j]));
    xs.sort((a, b) => a - b);
    this.half = Math.max(2.5, 1.1 * xs[Math.floor(0.99 * (xs.length - 1))]);
  }
  toPixel(u, v) { const w = this.base.width; return [(u / this.half + 1) * w / 2, (1 - v / this.half) * w / 2]; }
  toLatent(px, py) { const w = this.base.width; return [(2 * px / w - 1) * this.half, (1 - 2 * py / w) * this.half]; }
  ellipse(ctx, centre, radii, colour, dash) {
    const [cx, cy] = this.toPixel(centre[0], centre[1]), s = this.base.width / (2 * this.half);
    ctx.beginPath(); ctx.setLineDash(dash || []); ctx.strokeStyle = colour;
    ctx.ellipse(cx, cy, radii[0] * s, radii[1] * s, 0, 0, 2 * Math.PI); ctx.stroke(); ctx.setLineDash([]);
  }
  drawBase() {
    const ctx = this.base.getContext("2d"), w = this.base.width, [a, b] = this.dims;
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, w);
    ctx.strokeStyle = "#ddd"; ctx.beginPath(); ctx.moveTo(w / 2, 0); ctx.lineTo(w / 2, w); ctx.moveTo(0, w / 2); ctx.lineTo(w, w / 2); ctx.stroke();
    for (let i = 0; i < this.labels.length; i++) {
      const [x, y] = this.toPixel(this.means[i * this.L + a], this.means[i * this.L + b]);
      ctx.fillStyle = COLOURS[this.labels[i] % 10]; ctx.globalAlpha = 0.6; ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
    }
    ctx.globalAlpha = 1;
    const pr = this.P.prior;
    if (pr.name === "standard_normal") {       // N(0, I): circles at 1 and 2 sigma
      this.ellipse(ctx, [0, 0], [1, 1], "#000"); this.ellipse(ctx, [0, 0], [2, 2], "#000", [5, 4]);
    } else {                                    // each mixture component's 1 and 2 sigma ellipse
      const M = pr.means.c;
      for (let k = 0; k < pr.means.r; k++) {
        const c = [pr.means.d[k * M + a], pr.means.d[k * M + b]];
        const r = [Math.exp(0.5 * pr.log_var.d[k * M + a]), Math.exp(0.5 * pr.log_var.d[k * M + b])];
        this.ellipse(ctx, c, r, "#000"); this.ellipse(ctx, c, [2 * r[0], 2 * r[1]], "#888", [4, 4]);
      }
    }
  }
  latentPoint(uv) { const z = this.rest.slice(); z[this.dims[0]] = uv[0]; z[this.dims[1]] = uv[1]; return z; }
  decodePoint(z) { return NV.decode(this.P, NV.matrix(1, this.L, Float64Array.from(z)), [this.label]).d; }
  pointer(e) {
    const r = this.over.getBoundingClientRect();
    const px = (e.clientX - r.left) * this.over.width / r.width, py = (e.clientY - r.top) * this.over.height / r.height;
    this.pointAt(this.toLatent(px, py));
  }
  pointAt(uv) {
    this.last = uv;
    const z = this.latentPoint(uv);
    if (this.live) drawImage(this.out, this.decodePoint(z), Math.round(Math.sqrt(this.P.inputDim)));
    document.getElementById("plane-z").textContent = "z = (" + z.map(v => v.toFixed(2)).join(", ") + ")";
    this.drawOverlay();
  }
  drawOverlay() {
    const ctx = this.over.getContext("2d"), w = this.over.width, [a, b] = this.dims;
    ctx.clearRect(0, 0, w, w);
    if (this.last) {
      const [x, y] = this.toPixel(this.last[0], this.last[1]);
      ctx.strokeStyle = "#000"; ctx.beginPath(); ctx.moveTo(x - 8, y); ctx.lineTo(x + 8, y); ctx.moveTo(x, y - 8); ctx.lineTo(x, y + 8); ctx.stroke();
    }
    if (!this.marks) return;
    const {mean, std, z} = this.marks;           // the encoded digit: mean, 1 sigma ellipse, z
    this.ellipse(ctx, [mean[a], mean[b]], [std[a], std[b]], "#d00");
    let [x, y] = this.toPixel(mean[a], mean[b]);
    ctx.fillStyle = "#d00"; ctx.beginPath(); ctx.arc(x, y, 4, 0, 2 * Math.PI); ctx.fill();
    [x, y] = this.toPixel(z[a], z[b]);
    ctx.strokeStyle = "#d00"; ctx.lineWidth = 2; ctx.beginPath(); ctx.moveTo(x - 5, y - 5); ctx.lineTo(x + 5, y + 5); ctx.moveTo(x + 5, y - 5); ctx.lineTo(x - 5, y + 5); ctx.stroke(); ctx.lineWidth = 1;
  }
}

class Encoder {
  constructor(app) {
    this.app = app; this.P = app.P; this.side = Math.round(Math.sqrt(app.P.inputDim));
    this.pixels = new Float64Array(app.P.inputDim);
    this.pad = document.getElementById("encode-pad"); this.recon = document.getElementById("encode-recon");
    this.pick = NV.unpack(app.bundle.test.pick); this.pickLabels = NV.unpack(app.bundle.test.labels).d;
    this.draw = NV.rng(1);
    let down = false;
    this.pad.addEventListener("mousedown", e => { down = true; this.paint(e); });
    this.pad.addEventListener("mousemove", e => { if (down) this.paint(e); });
    window.addEventListener("mouseup", () => { if (down) { down = false; this.run(); } });
    document.getElementById("encode-clear").onclick = () => { this.pixels.fill(0); this.show(); this.run(); };
    document.getElementById("encode-pick").onclick = () => this.choose(+document.getElementById("encode-index").value);
    document.getElementById("encode-eps").onclick = () => { this.newEps(); this.run(); };
    this.newEps(); this.choose(0);
  }
  newEps() {  // eps ~ N(0, I) by Box-Muller from the page's seeded generator
    this.eps = Array.from({length: this.P.latent}, () => Math.sqrt(-2 * Math.log(1 - this.draw())) * Math.cos(2 * Math.PI * this.draw()));
  }
  choose(i) {
    const n = this.pick.shape[0]; i = Math.max(0, Math.min(n - 1, i | 0));
    for (let j = 0; j < this.pixels.length; j++) this.pixels[j] = this.pick.d[i * this.pixels.length + j] / 255;
    const plane = this.app.plane, sel = document.getElementById("digit");
    if (sel) { sel.value = this.pickLabels[i]; plane.label = this.pickLabels[i]; }
    this.show(); this.run();
  }
  paint(e) {  // a soft round brush, as pen strokes in MNIST look
    const r = this.pad.getBoundingClientRect();
    const cx = (e.clientX - r.left) / r.width * this.side, cy = (e.clientY - r.top) / r.height * this.side;
    for (let y = 0; y < this.side; y++) for (let x = 0; x < this.side; x++) {
      const d2 = (x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2, v = Math.exp(-d2 / 1.2);
      this.pixels[y * this.side + x] = Math.min(1, this.pixels[y * this.side + x] + v);
    }
    this.show();
  }
  show() { drawImage(this.pad, this.pixels, this.side); }
  run() {
    const P = this.P, plane = this.app.plane, y = [plane.label];
    const heads = NV.encode(P, NV.matrix(1, P.inputDim, Float64Array.from(this.pixels)), y);
    const mean = Array.from(heads.mean.d), std = Array.from(heads.log_var.d, v => Math.exp(0.5 * v));
    const z = mean.map((m, j) => m + std[j] * this.eps[j]);                 // z = mu + sigma * eps (R1)
    plane.marks = {mean, std, z}; plane.drawOverlay();
    drawImage(this.recon, plane.decodePoint(z), this.side);
    const f = v => v.map(a => a.toFixed(2)).join(", ");
    document.getElementById("encode-numbers").innerHTML =
      `&mu; = (${f(mean)})<br>&sigma; = (${f(std)})<br>&epsilon; = (${f(this.eps)})<br>z = &mu; + &sigma; &odot; &epsilon; = (${f(z)})`;
  }
}
