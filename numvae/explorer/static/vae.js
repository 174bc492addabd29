// numvae explorer: the VAE's forward and backward pass in plain JavaScript, in float64.
// The same arithmetic as numvae/model/vae.py and its parts, named as `numvae inspect` names
// each quantity; equation labels are those of docs/derivations.md.
// A matrix is {r, c, d}: r rows, c columns, d a Float64Array in row-major order.
"use strict";
const NV = (function () {
  const LOG_2PI = Math.log(2 * Math.PI);

  function unpack(packed) {
    // the base64 bytes of numvae.explorer.bundle.pack, as float64 numbers
    const bytes = Uint8Array.from(atob(packed.data), ch => ch.charCodeAt(0));
    const Kind = {float32: Float32Array, float64: Float64Array, uint8: Uint8Array}[packed.dtype];
    const typed = new Kind(bytes.buffer);
    return {shape: packed.shape, d: Float64Array.from(typed)};
  }
  function matrix(r, c, d) { return {r, c, d: d || new Float64Array(r * c)}; }
  function asMatrix(packed) {
    const a = unpack(packed), s = a.shape;
    return s.length === 1 ? matrix(1, s[0], a.d) : matrix(a.d.length / s[s.length - 1], s[s.length - 1], a.d);
  }
  function copy(m) { return matrix(m.r, m.c, Float64Array.from(m.d)); }
  function map(m, f) { const out = matrix(m.r, m.c); for (let i = 0; i < m.d.length; i++) out.d[i] = f(m.d[i], i); return out; }
  function zip(a, b, f) { const out = matrix(a.r, a.c); for (let i = 0; i < a.d.length; i++) out.d[i] = f(a.d[i], b.d[i], i); return out; }
  function concat(a, b) {  // [a, b] along the columns (eq. CD1)
    const out = matrix(a.r, a.c + b.c);
    for (let i = 0; i < a.r; i++) {
      out.d.set(a.d.subarray(i * a.c, (i + 1) * a.c), i * out.c);
      out.d.set(b.d.subarray(i * b.c, (i + 1) * b.c), i * out.c + a.c);
    }
    return out;
  }
  function columns(a, c) {  // the first c columns
    const out = matrix(a.r, c);
    for (let i = 0; i < a.r; i++) out.d.set(a.d.subarray(i * a.c, i * a.c + c), i * c);
    return out;
  }
  function rowSums(a) { const s = new Float64Array(a.r); for (let i = 0; i < a.r; i++) { let t = 0; for (let j = 0; j < a.c; j++) t += a.d[i * a.c + j]; s[i] = t; } return s; }
  function oneHot(y, n) { const out = matrix(y.length, n); y.forEach((v, i) => { out.d[i * n + v] = 1; }); return out; }

  // --- layers (eqs. D1-D5) ---------------------------------------------------------
  function dense(x, W, b) {  // out = x W + b (D1): x (n, k), W (k, m), b (m)
    const n = x.r, k = x.c, m = W.c, out = matrix(n, m), o = out.d, xd = x.d, w = W.d;
    for (let i = 0; i < n; i++) {
      const row = i * m;
      for (let j = 0; j < m; j++) o[row + j] = b.d[j];
      for (let p = 0; p < k; p++) {
        const a = xd[i * k + p];
        if (a === 0) continue;  // ReLU outputs and blank pixels: half the products are zero
        const wr = p * m;
        for (let j = 0; j < m; j++) o[row + j] += a * w[wr + j];
      }
    }
    return out;
  }
  function denseBackward(dout, x, W, skipDx) {  // (D2): dx = dout W^T, dW = x^T dout, db = sum_batch dout
    // skipDx: the network's first layer, whose input (the data) needs no gradient
    const n = x.r, k = x.c, m = W.c, dx = skipDx ? null : matrix(n, k), dW = matrix(k, m), db = matrix(1, m);
    for (let i = 0; i < n; i++) {
      const gr = i * m;
      for (let p = 0; p < k; p++) {
        const a = x.d[i * k + p], wr = p * m;
        if (!skipDx) { let s = 0; for (let j = 0; j < m; j++) s += dout.d[gr + j] * W.d[wr + j]; dx.d[i * k + p] = s; }
        if (a !== 0) for (let j = 0; j < m; j++) dW.d[wr + j] += a * dout.d[gr + j];
      }
      for (let j = 0; j < m; j++) db.d[j] += dout.d[i * m + j];
    }
    return {dx, dW, db};
  }
  const sigmoid = a => (a >= 0 ? 1 / (1 + Math.exp(-a)) : Math.exp(a) / (1 + Math.exp(a)));
  const softplus = a => Math.max(a, 0) + Math.log1p(Math.exp(-Math.abs(a)));
  function layerForward(layer, x) {
    if (layer.kind === "dense") return dense(x, layer.W, layer.b);
    if (layer.kind === "relu") return map(x, v => (v > 0 ? v : 0));         // (D3)
    return map(x, Math.tanh);                                                 // (D5)
  }
  function layerBackward(layer, dout, input, output, skipDx) {  // -> {dx, dW?, db?}
    if (layer.kind === "dense") return denseBackward(dout, input, layer.W, skipDx);
    if (layer.kind === "relu") return {dx: zip(dout, output, (g, y) => (y > 0 ? g : 0))};  // (D3)
    return {dx: zip(dout, output, (g, y) => g * (1 - y * y))};                            // (D5)
  }

  // --- the model ----------------------------------------------------------------------
  function denseOf(entry) { return {kind: "dense", W: asMatrix(entry.W), b: asMatrix(entry.b)}; }
  function layersOf(list) { return list.map(l => (l.kind === "dense" ? denseOf(l) : {kind: l.kind})); }
  function load(bundle) {
    const c = bundle.config, net = bundle.network, P = {
      latent: bundle.latent_dim, inputDim: bundle.input_dim, nClasses: bundle.n_classes,
      likelihood: c.likelihood, sigma: c.sigma === undefined ? 1 : c.sigma,
      klWeight: c.kl_weight === undefined ? 1 : c.kl_weight, prior: {name: bundle.prior.name}};
    for (const key of ["logits", "means", "log_var"])
      if (bundle.prior[key]) P.prior[key] = asMatrix(bundle.prior[key]);
    if (net.compressor) {
      P.comp = layersOf(net.compressor); P.dec = layersOf(net.decoder);
      P.heads = {mean: denseOf(net.heads.mean)};
      if (net.heads.log_var) P.heads.log_var = denseOf(net.heads.log_var);
    }
    return P;
  }
  function withLabels(P, a, y) { return P.nClasses ? concat(a, oneHot(y, P.nClasses)) : a; }
  function encode(P, x, y) {  // x (n, input_dim) -> {mean, log_var}
    let h = withLabels(P, x, y);
    for (const layer of P.comp) h = layerForward(layer, h);
    const out = {mean: dense(h, P.heads.mean.W, P.heads.mean.b)};
    if (P.heads.log_var) out.log_var = dense(h, P.heads.log_var.W, P.heads.log_var.b);
    return out;
  }
  function decode(P, z, y) {  // z (n, latent) -> sigmoid(a), (n, input_dim)
    let h = withLabels(P, z, y);
    for (const layer of P.dec) h = layerForward(layer, h);
    return map(h, sigmoid);
  }

  // --- the prior ---------------------------------------------------------------------
  function logSoftmax(v) { const top = Math.max(...v); const s = Math.log(v.reduce((t, a) => t + Math.exp(a - top), 0)); return v.map(a => a - top - s); }
  function mixtureTerms(prior, z, row) {  // ell_k(z) = log pi_k + log N(z; mu_k, sigma_k^2) (GM1)
    const K = prior.means.r, M = prior.means.c, logPi = logSoftmax(Array.from(prior.logits.d));
    const ell = [], u = [], diff = [];
    for (let k = 0; k < K; k++) {
      let q = 0, lv = 0; const uk = [], dk = [];
      for (let j = 0; j < M; j++) {
        const dd = z.d[row * M + j] - prior.means.d[k * M + j], inv = Math.exp(-prior.log_var.d[k * M + j]);
        q += dd * dd * inv; lv += prior.log_var.d[k * M + j]; uk.push(dd * inv); dk.push(dd);
      }
      ell.push(logPi[k] - 0.5 * (q + lv + M * LOG_2PI)); u.push(uk); diff.push(dk);
    }
    return {ell, u, diff, pi: logPi.map(Math.exp)};
  }
  function logPrior(prior, z, row, M) {
    if (prior.name === "standard_normal") {  // (I1)
      let s = 0; for (let j = 0; j < M; j++) s += z.d[row * M + j] ** 2;
      return -0.5 * s - 0.5 * M * LOG_2PI;
    }
    const ell = mixtureTerms(prior, z, row).ell, top = Math.max(...ell);  // log-sum-exp: subtract the max
    return top + Math.log(ell.reduce((t, a) => t + Math.exp(a - top), 0));
  }

  // --- one training step, forward (V1) ---------------------------------------------------
  // ov: quantities to replace, by name, for the finite-difference checks: a node's name,
  // or "mean@z", "mean@kl", "log_var@z", "log_var@kl" for a head where only the sampler or
  // only the KL reads it.
  function forward(P, batch, ov) {
    ov = ov || {};
    const N = {}, put = (name, v) => (N[name] = ov[name] || v);
    const B = batch.x.r, M = P.latent;
    put("x", batch.x);
    let h = batch.x;
    if (P.nClasses) { h = concat(h, put("onehot(y)", oneHot(batch.y, P.nClasses))); }
    const encIn = h, encOut = [];
    P.comp.forEach((layer, i) => { h = put(`encoder.compressor.${i}`, layerForward(layer, h)); encOut.push(h); });
    const mean = put("mean", dense(h, P.heads.mean.W, P.heads.mean.b));
    const logVar = put("log_var", dense(h, P.heads.log_var.W, P.heads.log_var.b));
    const meanZ = ov["mean@z"] || mean, lvZ = ov["log_var@z"] || logVar;
    const meanKL = ov["mean@kl"] || mean, lvKL = ov["log_var@kl"] || logVar;
    const std = put("std", map(lvZ, v => Math.exp(0.5 * v)));                 // (R1)
    const eps = put("eps", batch.eps);
    const z = put("z", zip(meanZ, std, (m, s, i) => m + s * eps.d[i]));        // (R1)
    h = P.nClasses ? concat(z, oneHot(batch.y, P.nClasses)) : z;
    const decIn = h, decOut = [], n = P.dec.length;
    P.dec.forEach((layer, i) => { h = put(`decoder.decompressor.${i}`, layerForward(layer, h)); decOut.push(h); });
    const logits = h, output = put(`decoder.decompressor.${n}`, map(logits, sigmoid));
    const x = batch.x, D = x.c, nll = new Float64Array(B);
    for (let b = 0; b < B; b++) {
      let s = 0;
      for (let i = b * D; i < (b + 1) * D; i++) {
        if (P.likelihood === "bernoulli") s += softplus(logits.d[i]) - x.d[i] * logits.d[i];  // (B3)
        else s += (x.d[i] - output.d[i]) ** 2 / (2 * P.sigma ** 2);                             // (G1)
      }
      nll[b] = P.likelihood === "bernoulli" ? s : s + 0.5 * D * Math.log(2 * Math.PI * P.sigma ** 2);
    }
    const kl = new Float64Array(B);
    for (let b = 0; b < B; b++) {
      let s = 0;
      for (let j = b * M; j < (b + 1) * M; j++) {
        if (P.prior.name === "standard_normal") s += 0.5 * (meanKL.d[j] ** 2 + Math.exp(lvKL.d[j]) - 1 - lvKL.d[j]);  // (K1)
        else { const u = (z.d[j] - meanKL.d[j]) / Math.exp(0.5 * lvKL.d[j]); s += -0.5 * u * u - 0.5 * lvKL.d[j] - 0.5 * LOG_2PI; }  // log q (I1)
      }
      kl[b] = P.prior.name === "standard_normal" ? s : s - logPrior(P.prior, z, b, M);        // (K3), S = 1
    }
    put("reconstruction", matrix(1, B, nll)); put("kl", matrix(1, B, kl));
    let loss = 0; for (let b = 0; b < B; b++) loss += (nll[b] + P.klWeight * kl[b]) / B;        // (V1)
    N.loss = matrix(1, 1, Float64Array.of(loss));
    return {N, loss, encIn, encOut, decIn, decOut};
  }

  // --- and backward (V2-V6) ------------------------------------------------------------
  function sequenceBackward(layers, input, outputs, dout, prefix, G, stopAtFirst) {
    for (let i = layers.length - 1; i >= 0; i--) {
      const layer = layers[i], r = layerBackward(layer, dout, i ? outputs[i - 1] : input, outputs[i], i === 0 && stopAtFirst);
      if (r.dW) { G[`${prefix}.${i}.W (grad)`] = r.dW; G[`${prefix}.${i}.b (grad)`] = r.db; }
      if (i === 0 && stopAtFirst) return null;
      dout = r.dx;
      if (i > 0) G[`d ${prefix}.${i - 1}`] = dout;
    }
    return dout;
  }
  function klBackward(P, F, dkl, G) {  // (K2) or (K4), with the mixture's (GM3)
    const N = F.N, M = P.latent, B = N.mean.r, mean = N.mean, lv = N.log_var, eps = N.eps, std = N.std;
    if (P.prior.name === "standard_normal")
      return {dz: null, mean: map(mean, v => dkl * v), log_var: map(lv, v => dkl * 0.5 * (Math.exp(v) - 1))};
    const dmean = zip(eps, std, (e, s) => dkl * e / s), dlv = map(eps, e => dkl * 0.5 * (e * e - 1));
    const dz = zip(eps, std, (e, s) => -dkl * e / s), pr = P.prior, K = pr.means.r;
    const gm = matrix(K, M), glv = matrix(K, M), glog = matrix(1, K);
    for (let b = 0; b < B; b++) {
      const t = mixtureTerms(pr, N.z, b), r = logSoftmax(t.ell).map(Math.exp), w = r.map(v => -dkl * v);  // dlog_p = -dkl
      for (let k = 0; k < K; k++) {
        glog.d[k] += w[k] + dkl * t.pi[k];
        for (let j = 0; j < M; j++) {
          gm.d[k * M + j] += w[k] * t.u[k][j]; glv.d[k * M + j] += 0.5 * w[k] * (t.diff[k][j] * t.u[k][j] - 1);
          dz.d[b * M + j] -= w[k] * t.u[k][j];
        }
      }
    }
    G["prior.logits (grad)"] = glog; G["prior.means (grad)"] = gm; G["prior.log_var (grad)"] = glv;
    return {dz, mean: dmean, log_var: dlv};
  }
  function backward(P, batch, F) {
    const N = F.N, G = {}, B = batch.x.r, M = P.latent, n = P.dec.length, out = N[`decoder.decompressor.${n}`];
    const x = batch.x, dnll = 1 / B;  // each row of the batch weighs 1 / B (S = 1)
    let dlogits;
    if (P.likelihood === "bernoulli") dlogits = zip(out, x, (p, v) => dnll * (p - v));  // (B4, V2)
    else {
      const dout = zip(out, x, (p, v) => dnll * (p - v) / P.sigma ** 2);               // (G2, V2)
      G["d output"] = dout;
      dlogits = zip(dout, out, (g, p) => g * p * (1 - p));                             // (D4)
    }
    G["d logits"] = dlogits;
    const dzin = sequenceBackward(P.dec, F.decIn, F.decOut, dlogits, "decoder.decompressor", G, false);
    const fromKL = klBackward(P, F, P.klWeight / B, G);
    let dz = P.nClasses ? columns(dzin, M) : dzin;                                       // (CD1)
    if (fromKL.dz) dz = zip(dz, fromKL.dz, (a, b) => a + b);
    G["d z"] = dz;
    const fromZ = {mean: dz, log_var: zip(dz, N.std, (g, s, i) => g * 0.5 * s * N.eps.d[i])};  // (V3)
    for (const head of ["mean", "log_var"]) {
      G[`d ${head} (from z)`] = fromZ[head]; G[`d ${head} (from KL)`] = fromKL[head];
    }
    const shared = F.encOut[F.encOut.length - 1], last = P.comp.length - 1;
    let dshared = null;
    for (const head of ["mean", "log_var"]) {
      const dh = zip(fromZ[head], fromKL[head], (a, b) => a + b);                      // (V5): the paths add
      G[`d ${head}`] = dh;
      const r = denseBackward(dh, shared, P.heads[head].W);
      G[`encoder.${head}.W (grad)`] = r.dW; G[`encoder.${head}.b (grad)`] = r.db;
      dshared = dshared ? zip(dshared, r.dx, (a, b) => a + b) : r.dx;                  // (V6): the heads add
    }
    G[`d encoder.compressor.${last}`] = dshared;
    sequenceBackward(P.comp, F.encIn, F.encOut, dshared, "encoder.compressor", G, true);
    return G;
  }
  function step(P, batch) { const F = forward(P, batch); return {F, G: backward(P, batch, F)}; }

  // --- central differences in the page (eq. C1) -----------------------------------------
  function rng(seed) {  // mulberry32: a small seeded generator, so a check can be repeated
    let a = seed >>> 0;
    return () => { a = (a + 0x6D2B79F5) >>> 0; let t = Math.imul(a ^ (a >>> 15), 1 | a); t ^= t + Math.imul(t ^ (t >>> 7), 61 | t); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  }
  function parameterOf(P, name) {  // "encoder.compressor.0.W" -> that Float64Array
    const parts = name.split("."), key = parts.pop();
    if (parts[0] === "prior") return P.prior[key].d;
    if (parts[1] === "compressor") return P.comp[+parts[2]][key].d;
    if (parts[1] === "decompressor") return P.dec[+parts[2]][key].d;
    return P.heads[parts[1]][key].d;
  }
  function overrideKey(P, name) {  // a row "d u" -> the quantity to perturb
    const u = name.slice(2), n = P.dec.length;
    if (u === "logits") return `decoder.decompressor.${n - 1}`;
    if (u === "output") return `decoder.decompressor.${n}`;
    const m = u.match(/^(mean|log_var) \(from (z|KL)\)$/);
    return m ? `${m[1]}@${m[2].toLowerCase()}` : u;
  }
  function check(P, batch, name, analytic, nEntries, seed, h) {
    h = h || 1e-5;
    const draw = rng(seed || 0), size = analytic.d.length, picks = [];
    const count = Math.min(nEntries || 5, size);
    while (picks.length < count) { const i = Math.floor(draw() * size); if (!picks.includes(i)) picks.push(i); }
    let lossAt;
    if (name.endsWith(" (grad)")) {
      const w = parameterOf(P, name.slice(0, -" (grad)".length));
      lossAt = (i, delta) => { const old = w[i]; w[i] = old + delta; const L = forward(P, batch).loss; w[i] = old; return L; };
    } else {
      const key = overrideKey(P, name), base = forward(P, batch).N;
      const value = base[key] || base[key.split("@")[0]];
      lossAt = (i, delta) => { const v = copy(value); v.d[i] += delta; return forward(P, batch, {[key]: v}).loss; };
    }
    const entries = picks.map(i => {
      const numeric = (lossAt(i, h) - lossAt(i, -h)) / (2 * h);
      return {index: i, analytic: analytic.d[i], numeric};
    });
    const scale = Math.max(...entries.map(e => Math.max(Math.abs(e.analytic), Math.abs(e.numeric))));
    const worst = Math.max(...entries.map(e => Math.abs(e.analytic - e.numeric)));
    return {entries, error: scale === 0 ? 0 : worst / scale};
  }

  return {unpack, matrix, asMatrix, load, encode, decode, forward, backward, step, check, rng, logPrior, mixtureTerms};
})();
