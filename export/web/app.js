// condgan web page: loads an exported condgan generator (.onnx) and runs it with onnxruntime-web.
// Query parameters: ?model=URL  ?image=URL  ?backend=auto|wasm|webgpu  ?seed=N  ?n=N  ?label=INDEX|all
// For tests: window.condganResult (after each run), window.condganLastZ (conditional runs),
// window.condganMetadata, window.condganError, and <body data-state="...">.
import {
  OnnxFormatError, axisTiles, chwToPixels, gridLayout, normalNoise, pixelsToCHW, rampWindow, readOnnxMetadata, roundTile,
} from './lib.mjs';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const PAD = 2; // pixels between grid tiles
const MAX_SAMPLES = 64;
// Tiled translation (?tile=N forces it; ?overlap=N, ?maxPixels=N): images above maxPixels go tile by tile.
const TILE = Number(params.get('tile')) || 512;
const OVERLAP = params.has('overlap') ? Number(params.get('overlap')) : 64;
const MAX_PIXELS = params.has('maxPixels') ? Number(params.get('maxPixels')) : 2048 * 2048;

let ort = null;
const state = {
  session: null, meta: null, kind: null, backend: null, name: '',
  image: null, // {bitmap, name} for translation models
  busy: false, runs: 0,
};

// ------------------------------------------------------------------ status and errors

function setState(s) { document.body.dataset.state = s; }

function status(msg) { $('status').textContent = msg; }

function showError(msg) {
  const el = $('error');
  el.textContent = msg;
  el.hidden = false;
  window.condganError = msg;
  status('');
  setState('error');
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
  window.condganError = null;
}

class UserError extends Error {}

// ------------------------------------------------------------------ onnxruntime-web

async function loadRuntime() {
  try {
    ort = await import('./dist/ort.min.mjs');
  } catch (e) {
    throw new UserError('onnxruntime-web is not here: dist/ort.min.mjs could not be loaded. '
      + 'Build the page first: `npm ci && npm run build` in export/web. ' + `(${e.message})`);
  }
  // Everything is served from dist/ next to this page: no CDN.
  ort.env.wasm.wasmPaths = new URL('./dist/', import.meta.url).href;
  // Threads need SharedArrayBuffer, i.e. a cross-origin-isolated page (COOP/COEP headers);
  // a plain `python -m http.server` gives none, so run single-threaded there.
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = 'warning';
}

async function webgpuUsable() {
  if (!navigator.gpu) return false;
  try {
    return !!(await navigator.gpu.requestAdapter());
  } catch {
    return false;
  }
}

async function createSession(bytes) {
  const want = $('backend-select').value;
  const order = [];
  if (want !== 'wasm' && await webgpuUsable()) order.push('webgpu');
  if (want !== 'webgpu' || order.length === 0) order.push('wasm');
  const notes = [];
  if (want === 'webgpu' && order[0] !== 'webgpu') notes.push('WebGPU is not available in this browser; using WASM');
  let last = null;
  for (const ep of order) {
    try {
      const session = await ort.InferenceSession.create(bytes, { executionProviders: [ep], graphOptimizationLevel: 'all' });
      return { session, backend: ep, notes };
    } catch (e) {
      last = e;
      if (ep !== order[order.length - 1]) notes.push(`${ep} failed (${e.message || e}); falling back`);
    }
  }
  throw new UserError(`onnxruntime-web could not load the model: ${last && (last.message || last)}`);
}

// ------------------------------------------------------------------ metadata

function intProp(props, key, { min = 1 } = {}) {
  const v = Number(props[key]);
  if (!(key in props) || !Number.isInteger(v) || v < min) {
    throw new UserError(`condgan metadata ${key} is missing or not an integer >= ${min} (got ${JSON.stringify(props[key])})`);
  }
  return v;
}

function parseMeta(bytes, name) {
  let props;
  try {
    ({ props } = readOnnxMetadata(bytes));
  } catch (e) {
    if (e instanceof OnnxFormatError) {
      throw new UserError(`${name} is not a valid ONNX model file (${e.message}). `
        + 'Load a .onnx file written by `python -m condgan.export`.');
    }
    throw e;
  }
  const kind = props['condgan.kind'];
  if (kind === undefined) {
    throw new UserError(`${name} is an ONNX model but not a condgan export: it has no condgan.kind metadata. `
      + 'Export one with `python -m condgan.export RUN --out model.onnx`.');
  }
  if (kind !== 'conditional' && kind !== 'translation') {
    throw new UserError(`${name} has condgan.kind "${kind}"; this page runs "conditional" and "translation" models.`);
  }
  const meta = {
    props, kind, model: props['condgan.model'] || '?',
    channels: intProp(props, 'condgan.channels'),
    height: intProp(props, 'condgan.height'),
    width: intProp(props, 'condgan.width'),
  };
  if (kind === 'conditional') {
    meta.latentDim = intProp(props, 'condgan.latent_dim');
    meta.numClasses = intProp(props, 'condgan.num_classes');
    meta.labelDtype = props['condgan.label_dtype'] || 'int64';
    if (meta.labelDtype !== 'int64' && meta.labelDtype !== 'int32') {
      throw new UserError(`unsupported condgan.label_dtype "${meta.labelDtype}" (int64 or int32)`);
    }
    let names = [];
    try {
      names = JSON.parse(props['condgan.class_names'] || '[]');
    } catch {
      names = [];
    }
    if (!Array.isArray(names) || names.length !== meta.numClasses) {
      names = Array.from({ length: meta.numClasses }, (_, i) => String(i));
    }
    meta.classNames = names.map(String);
  } else {
    meta.inChannels = intProp(props, 'condgan.in_channels');
    meta.tileMultiple = 'condgan.tile_multiple' in props ? intProp(props, 'condgan.tile_multiple') : 1;
    if (meta.inChannels > 4) {
      throw new UserError(`this model takes ${meta.inChannels}-channel inputs; the page can only feed images (1-4 channels)`);
    }
  }
  return meta;
}

function checkInputs(session, meta) {
  const want = meta.kind === 'conditional' ? ['z', 'label'] : ['image'];
  const missing = want.filter((n) => !session.inputNames.includes(n));
  if (missing.length) {
    throw new UserError(`the model says condgan.kind="${meta.kind}" but its inputs are [${session.inputNames.join(', ')}]; `
      + `expected [${want.join(', ')}]`);
  }
}

function renderInfo(meta, name) {
  $('model-title').textContent = `${name} — ${meta.model} (${meta.kind})`;
  const dl = $('meta');
  dl.replaceChildren();
  for (const [k, v] of Object.entries(meta.props)) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    dl.append(dt, dd);
  }
  $('info').hidden = false;
}

// ------------------------------------------------------------------ model loading

async function loadModel(bytes, name) {
  clearError();
  setState('loading');
  window.condganResult = null;
  window.condganMetadata = null;
  state.session = null;
  $('conditional').hidden = true;
  $('translation').hidden = true;
  $('info').hidden = true;
  $('backend').hidden = true;
  try {
    status(`Reading ${name}…`);
    const meta = parseMeta(bytes, name);
    window.condganMetadata = meta.props;
    status(`Creating an onnxruntime session for ${name}…`);
    const { session, backend, notes } = await createSession(bytes);
    checkInputs(session, meta);
    Object.assign(state, { session, meta, kind: meta.kind, backend, name });
    $('backend').textContent = backend === 'webgpu' ? 'WebGPU' : 'WASM';
    $('backend').title = notes.join('\n');
    $('backend').hidden = false;
    renderInfo(meta, name);
    status(`Loaded ${name} on ${backend}${notes.length ? ' — ' + notes.join('; ') : ''}.`);
    setState('ready');
    if (meta.kind === 'conditional') {
      setupConditional(meta);
      await generate();
    } else {
      $('translation').hidden = false;
      if (state.image) await translate();
      else status(`Loaded ${name} on ${backend}. Pick an image to translate.`);
    }
  } catch (e) {
    reportError(e);
  }
}

function reportError(e) {
  console.error(e);
  showError(e instanceof UserError ? e.message : `Error: ${e && (e.message || e)}`);
}

async function fetchBytes(url, what) {
  let res;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new UserError(`could not fetch the ${what} ${url}: ${e.message}`);
  }
  if (!res.ok) throw new UserError(`could not fetch the ${what} ${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

// ------------------------------------------------------------------ conditional models

function setupConditional(meta) {
  const sel = $('class-select');
  sel.replaceChildren();
  meta.classNames.forEach((n, i) => sel.add(new Option(`${i}: ${n}`, String(i))));
  sel.add(new Option('all classes (one row each)', 'all'));
  const want = params.get('label');
  if (want !== null && [...sel.options].some((o) => o.value === want)) sel.value = want;
  $('conditional').hidden = false;
}

function readSeed() {
  const raw = $('seed').value.trim();
  if (!/^\d+$/.test(raw) || Number(raw) > 4294967295) {
    throw new UserError(`the seed must be an integer from 0 to 4294967295 (got "${raw}")`);
  }
  return Number(raw);
}

function readCount() {
  const n = Number($('count').value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_SAMPLES) {
    throw new UserError(`the number of samples must be an integer from 1 to ${MAX_SAMPLES}`);
  }
  return n;
}

async function generate() {
  if (!state.session || state.kind !== 'conditional' || state.busy) return;
  const meta = state.meta;
  state.busy = true;
  setBusy(true);
  clearError();
  setState('running');
  window.condganResult = null;
  try {
    const seed = readSeed();
    const perClass = readCount();
    const choice = $('class-select').value;
    const all = choice === 'all';
    const n = all ? perClass * meta.numClasses : perClass;
    const labels = all
      ? Array.from({ length: n }, (_, i) => Math.floor(i / perClass))
      : Array(n).fill(Number(choice));
    const z = normalNoise(seed, n * meta.latentDim);
    const labelData = meta.labelDtype === 'int64'
      ? BigInt64Array.from(labels, (v) => BigInt(v))
      : Int32Array.from(labels);
    status(`Generating ${n} sample${n > 1 ? 's' : ''}…`);
    const t0 = performance.now();
    const out = await state.session.run({
      z: new ort.Tensor('float32', z, [n, meta.latentDim]),
      label: new ort.Tensor(meta.labelDtype, labelData, [n]),
    });
    const ms = performance.now() - t0;
    const y = out.image || out[state.session.outputNames[0]];
    if (y.type !== 'float32') throw new UserError(`expected a float32 output, got ${y.type}`);
    const [bn, c, h, w] = y.dims;
    if (bn !== n) throw new UserError(`the model returned ${bn} images for ${n} inputs`);
    const data = y.data;
    const { rows, cols } = gridLayout(perClass, all ? meta.numClasses : 0);
    const canvas = $('grid-canvas');
    canvas.width = cols * w + (cols + 1) * PAD;
    canvas.height = rows * h + (rows + 1) * PAD;
    // display only (the canvas keeps 1 pixel per model pixel): about 768 px wide, 1x to 8x
    const scale = Math.min(8, Math.max(1, Math.floor(768 / Math.max(canvas.width, canvas.height))));
    canvas.style.width = `${canvas.width * scale}px`;
    canvas.style.height = `${canvas.height * scale}px`;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const img = ctx.createImageData(canvas.width, canvas.height);
    for (let q = 3; q < img.data.length; q += 4) img.data[q] = 255; // opaque black background
    const per = c * h * w;
    for (let i = 0; i < n; i++) {
      const r = all ? Math.floor(i / perClass) : Math.floor(i / cols);
      const col = all ? i % perClass : i % cols;
      chwToPixels(data, i * per, c, h, w, img.data, canvas.width, PAD + col * (w + PAD), PAD + r * (h + PAD));
    }
    ctx.putImageData(img, 0, 0);
    state.runs += 1;
    window.condganLastZ = Array.from(z);
    window.condganResult = {
      run: state.runs, backend: state.backend, kind: 'conditional', model: meta.model,
      width: canvas.width, height: canvas.height, tileWidth: w, tileHeight: h, channels: c,
      rows, cols, pad: PAD, n, seed, labels, labelDtype: meta.labelDtype, latentDim: meta.latentDim, ms,
    };
    const what = all ? 'all classes' : `class ${meta.classNames[labels[0]]}`;
    status(`Generated ${n} × ${w}×${h} (${what}, seed ${seed}) in ${ms.toFixed(1)} ms on ${state.backend}.`);
    setState('done');
  } catch (e) {
    reportError(e);
  } finally {
    state.busy = false;
    setBusy(false);
  }
}

// ------------------------------------------------------------------ translation models

async function setImage(blob, name) {
  let bitmap;
  try {
    // No colour management and no premultiplication: the pixels the model sees are the file's.
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (e) {
    throw new UserError(`${name} is not an image this browser can decode (${e.message || e})`);
  }
  state.image = { bitmap, name };
}

async function translate() {
  if (!state.session || state.kind !== 'translation' || !state.image || state.busy) return;
  const meta = state.meta;
  state.busy = true;
  setBusy(true);
  clearError();
  setState('running');
  window.condganResult = null;
  try {
    const { bitmap, name } = state.image;
    const W = bitmap.width;
    const H = bitmap.height;
    const inCanvas = $('input-canvas');
    inCanvas.width = W;
    inCanvas.height = H;
    const ictx = inCanvas.getContext('2d', { willReadFrequently: true });
    ictx.clearRect(0, 0, W, H);
    ictx.drawImage(bitmap, 0, 0);
    const pixels = ictx.getImageData(0, 0, W, H).data;
    const tiled = params.has('tile') || (MAX_PIXELS > 0 && W * H > MAX_PIXELS);
    const t0 = performance.now();
    const y = tiled ? await translateTiled(pixels, W, H, meta, name) : await runTranslation(
      pixelsToCHW(pixels, W, H, meta.inChannels), W, H, meta, `Translating ${name} (${W}×${H})…`);
    const ms = performance.now() - t0;
    const [, c, h, w] = y.dims;
    const outCanvas = $('output-canvas');
    outCanvas.width = w;
    outCanvas.height = h;
    const octx = outCanvas.getContext('2d', { willReadFrequently: true });
    const img = octx.createImageData(w, h);
    chwToPixels(y.data, 0, c, h, w, img.data, w, 0, 0);
    octx.putImageData(img, 0, 0);
    applyZoom();
    state.runs += 1;
    window.condganResult = {
      run: state.runs, backend: state.backend, kind: 'translation', model: meta.model,
      width: w, height: h, inputWidth: W, inputHeight: H, inChannels: meta.inChannels, channels: c, ms,
      tiles: y.tiles || 0,
    };
    const note = c > 4 || c === 0 ? ` (showing channel 0 of ${c})` : '';
    status(`Translated ${name} (${W}×${H}) in ${ms.toFixed(1)} ms on ${state.backend}${note}.`);
    setState('done');
  } catch (e) {
    reportError(e);
  } finally {
    state.busy = false;
    setBusy(false);
  }
}

async function runTranslation(x, w, h, meta, message) {
  status(message);
  const out = await state.session.run({ image: new ort.Tensor('float32', x, [1, meta.inChannels, h, w]) });
  const y = out.translated || out[state.session.outputNames[0]];
  if (y.type !== 'float32') throw new UserError(`expected a float32 output, got ${y.type}`);
  return y;
}

// Overlapping tiles, one session call each, accumulated with their windows into one CHW array.
async function translateTiled(pixels, W, H, meta, name) {
  const tile = roundTile(TILE, meta.tileMultiple);
  const rows = axisTiles(H, tile, OVERLAP);
  const cols = axisTiles(W, tile, OVERLAP);
  const total = rows.length * cols.length;
  let acc = null;
  let c = 0;
  let done = 0;
  for (const r of rows) {
    const wy = rampWindow(r);
    for (const q of cols) {
      const wx = rampWindow(q);
      const sub = new Uint8ClampedArray(4 * r.size * q.size);
      for (let y = 0; y < r.size; y++) {
        const from = 4 * ((r.start + y) * W + q.start);
        sub.set(pixels.subarray(from, from + 4 * q.size), 4 * y * q.size);
      }
      const x = pixelsToCHW(sub, q.size, r.size, meta.inChannels);
      const y = await runTranslation(x, q.size, r.size, meta,
        `Translating ${name} (${W}×${H}): tile ${done + 1} of ${total}…`);
      c = y.dims[1];
      if (!acc) acc = new Float32Array(c * H * W);
      const d = y.data;
      for (let ch = 0; ch < c; ch++) {
        for (let yy = 0; yy < r.size; yy++) {
          const base = ch * H * W + (r.start + yy) * W + q.start;
          const src = (ch * r.size + yy) * q.size;
          for (let xx = 0; xx < q.size; xx++) acc[base + xx] += d[src + xx] * wy[yy] * wx[xx];
        }
      }
      done += 1;
      window.condganTileProgress = { done, total };
    }
  }
  const rowSum = new Float32Array(H);
  const colSum = new Float32Array(W);
  for (const r of rows) rampWindow(r).forEach((v, i) => { rowSum[r.start + i] += v; });
  for (const q of cols) rampWindow(q).forEach((v, i) => { colSum[q.start + i] += v; });
  for (let ch = 0; ch < c; ch++) {
    for (let yy = 0; yy < H; yy++) {
      const base = ch * H * W + yy * W;
      for (let xx = 0; xx < W; xx++) acc[base + xx] /= rowSum[yy] * colSum[xx];
    }
  }
  return { data: acc, dims: [1, c, H, W], type: 'float32', tiles: total };
}

// Display size of the translation canvases (CSS only; their pixels stay 1:1 with the model's).
function applyZoom() {
  const z = Number($('zoom').value) || 1;
  for (const id of ['input-canvas', 'output-canvas']) {
    const c = $(id);
    c.style.width = `${c.width * z}px`;
    c.style.height = `${c.height * z}px`;
  }
}

// ------------------------------------------------------------------ wiring

function setBusy(b) {
  for (const id of ['generate', 'reseed', 'model-file', 'image-file']) $(id).disabled = b;
}

function wire() {
  $('model-file').addEventListener('change', async (ev) => {
    const f = ev.target.files[0];
    if (!f) return;
    await loadModel(new Uint8Array(await f.arrayBuffer()), f.name);
  });
  $('image-file').addEventListener('change', async (ev) => {
    const f = ev.target.files[0];
    if (!f) return;
    try {
      await setImage(f, f.name);
      await translate();
    } catch (e) {
      reportError(e);
    }
  });
  $('zoom').addEventListener('change', applyZoom);
  $('generate').addEventListener('click', () => generate());
  $('reseed').addEventListener('click', () => {
    $('seed').value = String(crypto.getRandomValues(new Uint32Array(1))[0]);
    generate();
  });
  $('backend-select').addEventListener('change', () => {
    status('The backend applies to the next model you load.');
  });
}

async function main() {
  setState('starting');
  window.condganResult = null;
  window.condganError = null;
  wire();
  if (params.has('seed')) $('seed').value = params.get('seed');
  if (params.has('n')) $('count').value = params.get('n');
  const b = params.get('backend');
  if (b === 'wasm' || b === 'webgpu' || b === 'auto') $('backend-select').value = b;
  try {
    await loadRuntime();
    if (params.has('image')) {
      const url = params.get('image');
      const bytes = await fetchBytes(url, 'image');
      await setImage(new Blob([bytes]), url.split('/').pop() || url);
    }
  } catch (e) {
    reportError(e);
    return;
  }
  const modelUrl = params.get('model');
  if (modelUrl) {
    let bytes;
    try {
      status(`Fetching ${modelUrl}…`);
      bytes = await fetchBytes(modelUrl, 'model');
    } catch (e) {
      reportError(e);
      return;
    }
    await loadModel(bytes, modelUrl.split('/').pop() || modelUrl);
  } else {
    status('Pick an exported .onnx model (or open this page with ?model=URL).');
    setState('idle');
  }
}

main();
