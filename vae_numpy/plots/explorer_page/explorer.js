(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("explorer-data").textContent);
  const d = data.latentDim;
  const [imgH, imgW] = data.imageShape;
  const [valueLo, valueHi] = data.valueRange;
  const plane = data.plane;

  // --- base64 little-endian floats -> Float64Array ------------------------------------------
  function readFloats(b64, dtype) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const view = new DataView(bytes.buffer);
    const size = dtype === "float64" ? 8 : 4;
    const out = new Float64Array(bytes.length / size);
    for (let i = 0; i < out.length; i++) {
      out[i] = size === 8 ? view.getFloat64(8 * i, true) : view.getFloat32(4 * i, true);
    }
    return out;
  }

  // --- the decoder: Dense -> activation -> ... -> Dense -> mean of p(x|z) ----------------------
  const sigmoid = (x) => 1 / (1 + Math.exp(-x));
  const ACTIVATIONS = {
    relu: (x) => (x > 0 ? x : 0),
    leaky_relu: (x, slope) => (x > 0 ? x : slope * x),
    tanh: (x) => Math.tanh(x),
    sigmoid: sigmoid,
    softplus: (x) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x))), // ln(1 + e^x), no overflow
    elu: (x, alpha) => (x > 0 ? x : alpha * Math.expm1(x)),
  };
  const dec = data.decoder;
  const hidden = ACTIVATIONS[dec.activation];
  const output = dec.output === "sigmoid" ? sigmoid : (x) => x;
  const layers = dec.layers.map((l) => ({
    nIn: l.in, nOut: l.out, W: readFloats(l.W, dec.dtype), b: readFloats(l.b, dec.dtype),
  }));

  function runDecoder(input) {
    let h = input;
    layers.forEach((layer, i) => {
      const y = Float64Array.from(layer.b); // y = h @ W + b, W of shape (in, out), row-major
      for (let r = 0; r < layer.nIn; r++) {
        const hr = h[r];
        const row = r * layer.nOut;
        for (let c = 0; c < layer.nOut; c++) y[c] += hr * layer.W[row + c];
      }
      const last = i === layers.length - 1;
      for (let c = 0; c < layer.nOut; c++) {
        y[c] = last ? output(y[c]) : hidden(y[c], dec.parameter);
      }
      h = y;
    });
    return h;
  }

  function decodeAt(z, label) {
    if (z.length !== d) throw new Error("z must have " + d + " entries, got " + z.length);
    const input = new Float64Array(d + data.nClasses); // [z | one_hot(label)]
    for (let j = 0; j < d; j++) input[j] = z[j];
    if (data.nClasses > 0) {
      const c = label === undefined ? state.label : label;
      if (!(Number.isInteger(c) && c >= 0 && c < data.nClasses)) {
        throw new Error("label must be an integer in 0 .. " + (data.nClasses - 1));
      }
      input[d + c] = 1;
    }
    return Array.from(runDecoder(input));
  }

  // --- coordinates: z = origin + coords @ basis ------------------------------------------------
  const state = {
    coords: Float64Array.from(plane.defaults),
    v: d >= 2 ? plane.defaults[1] : 0, // the vertical position (for a 1-D space, display only)
    label: 0,
    pins: [],
  };

  function latentOf(coords) {
    const z = Float64Array.from(plane.origin);
    for (let k = 0; k < d; k++) {
      const ck = coords[k];
      if (ck === 0) continue;
      for (let j = 0; j < d; j++) z[j] += ck * plane.basis[k][j];
    }
    return Array.from(z);
  }

  function latentAt(u, v) {
    const coords = Float64Array.from(state.coords);
    coords[0] = u;
    if (d >= 2) coords[1] = v;
    return latentOf(coords);
  }

  // --- drawing --------------------------------------------------------------------------------
  const greyOf = (x) => Math.round(255 * Math.min(1, Math.max(0, (x - valueLo) / (valueHi - valueLo))));

  function drawImage(canvas, values) {
    canvas.width = imgW;
    canvas.height = imgH;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(imgW, imgH);
    for (let i = 0; i < imgW * imgH; i++) {
      const g = greyOf(values[i]);
      img.data[4 * i] = g;
      img.data[4 * i + 1] = g;
      img.data[4 * i + 2] = g;
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  const planeCanvas = document.getElementById("plane");
  const decodedCanvas = document.getElementById("decoded");
  const SIZE = 480;
  const M = { left: 52, right: 12, top: 12, bottom: 40 };
  const [uLo, uHi] = plane.ranges[0];
  const [vLo, vHi] = plane.ranges[1];
  const toX = (u) => M.left + ((u - uLo) / (uHi - uLo)) * (SIZE - M.left - M.right);
  const toY = (v) => SIZE - M.bottom - ((v - vLo) / (vHi - vLo)) * (SIZE - M.top - M.bottom);
  const fromX = (x) => uLo + ((x - M.left) / (SIZE - M.left - M.right)) * (uHi - uLo);
  const fromY = (y) => vLo + ((SIZE - M.bottom - y) / (SIZE - M.top - M.bottom)) * (vHi - vLo);

  const points = data.points && {
    u: readFloats(data.points.u, "float32"),
    v: readFloats(data.points.v, "float32"),
    label: data.points.label,
  };

  function niceTicks(lo, hi) {
    const raw = (hi - lo) / 6;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9 * step; t += step) {
      ticks.push(Math.abs(t) < 1e-9 * step ? 0 : t);
    }
    return ticks;
  }

  let background = null; // axes and points, redrawn only when the label changes

  function drawBackground() {
    const ratio = window.devicePixelRatio || 1;
    background = document.createElement("canvas");
    background.width = SIZE * ratio;
    background.height = SIZE * ratio;
    const ctx = background.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, SIZE, SIZE);
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = "#e4e4e4";
    ctx.fillStyle = "#444";
    ctx.lineWidth = 1;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of niceTicks(uLo, uHi)) {
      const x = Math.round(toX(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, M.top); ctx.lineTo(x, SIZE - M.bottom); ctx.stroke();
      ctx.fillText(String(+t.toPrecision(6)), x, SIZE - M.bottom + 4);
    }
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    if (d >= 2 || points) {
      for (const t of niceTicks(vLo, vHi)) {
        const y = Math.round(toY(t)) + 0.5;
        ctx.beginPath(); ctx.moveTo(M.left, y); ctx.lineTo(SIZE - M.right, y); ctx.stroke();
        ctx.fillText(String(+t.toPrecision(6)), M.left - 4, y);
      }
    }
    ctx.strokeStyle = "#999";
    ctx.strokeRect(M.left + 0.5, M.top + 0.5, SIZE - M.left - M.right, SIZE - M.top - M.bottom);
    ctx.fillStyle = "#222";
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    ctx.fillText(plane.labels[0], M.left + (SIZE - M.left - M.right) / 2, SIZE - 4);
    ctx.save();
    ctx.translate(12, M.top + (SIZE - M.top - M.bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle";
    ctx.fillText(d >= 2 ? plane.labels[1] : points && points.label ? "label" : "", 0, 0);
    ctx.restore();
    if (points) {
      const n = points.u.length;
      const r = n > 2000 ? 1.6 : 2.6;
      ctx.save();
      ctx.beginPath();
      ctx.rect(M.left, M.top, SIZE - M.left - M.right, SIZE - M.top - M.bottom);
      ctx.clip();
      for (let i = 0; i < n; i++) {
        const c = points.label ? points.label[i] : 0;
        const chosen = data.nClasses === 0 || c === data.classes.indexOf(state.label);
        ctx.globalAlpha = chosen ? 0.8 : 0.2;
        ctx.fillStyle = data.colours.length ? data.colours[c] : "#1f77b4";
        ctx.beginPath();
        ctx.arc(toX(points.u[i]), toY(points.v[i]), r, 0, 2 * Math.PI);
        ctx.fill();
      }
      ctx.restore();
    }
  }

  function drawPlane() {
    const ratio = window.devicePixelRatio || 1;
    planeCanvas.width = SIZE * ratio;
    planeCanvas.height = SIZE * ratio;
    const ctx = planeCanvas.getContext("2d");
    ctx.drawImage(background, 0, 0);
    ctx.scale(ratio, ratio);
    ctx.font = "bold 11px system-ui, sans-serif";
    ctx.textAlign = "left";
    ctx.textBaseline = "bottom";
    state.pins.forEach((p, i) => {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(toX(p.u), toY(p.v), 5, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.fillStyle = "#000";
      ctx.fillText(String(i + 1), toX(p.u) + 6, toY(p.v) - 3);
    });
    const x = toX(state.coords[0]);
    const y = toY(state.v);
    ctx.strokeStyle = "rgba(0, 0, 0, 0.45)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(x, M.top); ctx.lineTo(x, SIZE - M.bottom);
    ctx.moveTo(M.left, y); ctx.lineTo(SIZE - M.right, y);
    ctx.stroke();
    ctx.strokeStyle = "#d62728";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(x, y, 6, 0, 2 * Math.PI);
    ctx.stroke();
  }

  const fmt = (x) => (x >= 0 ? " " : "") + x.toFixed(3);

  function update() {
    const z = latentOf(state.coords);
    const values = decodeAt(z);
    drawImage(decodedCanvas, values);
    drawPlane();
    const lines = z.map((zj, j) => "z" + (j + 1) + " = " + fmt(zj));
    if (data.nClasses > 0) lines.push("label " + data.classNames[data.classes.indexOf(state.label)]);
    document.getElementById("readout").textContent = lines.join("\n");
    return values;
  }

  function moveTo(u, v) {
    state.coords[0] = u;
    state.v = v;
    if (d >= 2) state.coords[1] = state.v;
    const values = update();
    return current(values);
  }

  function current(values) {
    const z = latentOf(state.coords);
    return {
      u: state.coords[0], v: state.v, z: z,
      label: data.nClasses > 0 ? state.label : null,
      values: values || decodeAt(z),
    };
  }

  // --- pins -------------------------------------------------------------------------------------
  const MAX_PINS = 24;
  function pin() {
    const p = current();
    p.coords = Array.from(state.coords);
    state.pins.push(p);
    if (state.pins.length > MAX_PINS) state.pins.shift();
    drawPins();
    drawPlane();
    return state.pins.length - 1;
  }

  function drawPins() {
    const box = document.getElementById("pins");
    box.textContent = "";
    document.getElementById("pins-box").hidden = state.pins.length === 0;
    state.pins.forEach((p, i) => {
      const c = document.createElement("canvas");
      drawImage(c, p.values);
      c.title = (i + 1) + ": z = (" + p.z.map((x) => x.toFixed(2)).join(", ") + ")" +
        (p.label === null ? "" : ", label " + data.classNames[data.classes.indexOf(p.label)]);
      c.addEventListener("click", () => {
        state.coords = Float64Array.from(p.coords);
        state.v = p.v;
        if (p.label !== null) setLabel(p.label);
        syncSliders();
        update();
      });
      box.appendChild(c);
    });
  }

  // --- controls: label selector, sliders, legend ------------------------------------------------
  function setLabel(c) {
    if (data.nClasses === 0) throw new Error("this model's decoder takes no label");
    if (!(Number.isInteger(c) && c >= 0 && c < data.nClasses)) {
      throw new Error("label must be an integer in 0 .. " + (data.nClasses - 1));
    }
    state.label = c;
    document.getElementById("label-select").value = String(c);
    drawBackground();
    update();
  }

  const sliderInputs = [];
  function setSlider(k, value) {
    if (!(k >= 0 && k < d - 2)) throw new Error("there are " + Math.max(0, d - 2) + " sliders");
    state.coords[k + 2] = value;
    syncSliders();
    update();
    return state.coords[k + 2];
  }

  function syncSliders() {
    sliderInputs.forEach(({ input, out }, k) => {
      input.value = String(state.coords[k + 2]);
      out.textContent = state.coords[k + 2].toFixed(2);
    });
  }

  function buildControls() {
    document.getElementById("title").textContent = data.title;
    document.getElementById("subtitle").textContent = data.subtitle;
    decodedCanvas.width = imgW;
    decodedCanvas.height = imgH;
    if (data.nClasses > 0) {
      const select = document.getElementById("label-select");
      for (let c = 0; c < data.nClasses; c++) {
        const opt = document.createElement("option");
        opt.value = String(c);
        opt.textContent = data.classNames[data.classes.indexOf(c)];
        select.appendChild(opt);
      }
      select.addEventListener("change", () => setLabel(Number(select.value)));
      document.getElementById("label-box").hidden = false;
    }
    const sliders = document.getElementById("sliders");
    for (let k = 2; k < d; k++) {
      const [lo, hi] = plane.ranges[k];
      const label = document.createElement("label");
      const name = document.createElement("span");
      const out = document.createElement("output");
      name.textContent = plane.labels[k] + ": ";
      name.appendChild(out);
      const input = document.createElement("input");
      input.type = "range";
      input.min = String(lo);
      input.max = String(hi);
      input.step = String((hi - lo) / 200);
      input.addEventListener("input", () => {
        state.coords[k] = Number(input.value);
        out.textContent = state.coords[k].toFixed(2);
        update();
      });
      label.append(name, input);
      sliders.appendChild(label);
      sliderInputs.push({ input, out });
    }
    syncSliders();
    if (points) {
      const legend = document.getElementById("legend");
      document.getElementById("legend-title").textContent = data.pointsLabel;
      const entries = points.label ? data.classNames : ["test set"];
      entries.forEach((name, i) => {
        const li = document.createElement("li");
        const sw = document.createElement("span");
        sw.className = "swatch";
        sw.style.background = data.colours.length ? data.colours[i] : "#1f77b4";
        li.append(sw, document.createTextNode(name));
        legend.appendChild(li);
      });
      document.getElementById("legend-box").hidden = false;
    }
  }

  // --- pointer and keyboard -----------------------------------------------------------------------
  function planeAt(event) {
    const rect = planeCanvas.getBoundingClientRect(); // includes the border
    const x = ((event.clientX - rect.left - planeCanvas.clientLeft) / planeCanvas.clientWidth) * SIZE;
    const y = ((event.clientY - rect.top - planeCanvas.clientTop) / planeCanvas.clientHeight) * SIZE;
    return [fromX(x), fromY(y)];
  }
  planeCanvas.addEventListener("pointermove", (e) => moveTo(...planeAt(e)));
  planeCanvas.addEventListener("click", (e) => {
    moveTo(...planeAt(e));
    pin();
  });
  planeCanvas.addEventListener("keydown", (e) => {
    const du = (uHi - uLo) / 100;
    const dv = (vHi - vLo) / 100;
    const moves = { ArrowLeft: [-du, 0], ArrowRight: [du, 0], ArrowUp: [0, dv], ArrowDown: [0, -dv] };
    if (moves[e.key]) {
      moveTo(state.coords[0] + moves[e.key][0], state.v + moves[e.key][1]);
      e.preventDefault();
    } else if (e.key === "Enter" || e.key === " ") {
      pin();
      e.preventDefault();
    }
  });

  buildControls();
  drawBackground();
  update();

  window.explorer = {
    info: {
      latentDim: d, inputDim: data.inputDim, imageShape: [imgH, imgW], nClasses: data.nClasses,
      planeMode: plane.mode, ranges: plane.ranges, labels: plane.labels,
      nPoints: points ? points.u.length : 0,
    },
    decodeAt: decodeAt,
    latentAt: latentAt,
    moveTo: moveTo,
    current: () => current(),
    pin: pin,
    pins: () => state.pins.map((p) => ({ u: p.u, v: p.v, z: p.z, label: p.label })),
    setSlider: setSlider,
    setLabel: setLabel,
    greyOf: greyOf,
    ready: true,
  };
})();
