// Pure helpers for the condgan web page (no DOM, no onnxruntime): usable from node as well.

// ---------------------------------------------------------------------------------------------
// ONNX metadata_props, read straight from the protobuf bytes.
// onnxruntime-web's InferenceSession exposes input/output metadata but not the model's
// metadata_props, so the page walks the top level of the ModelProto itself:
//   ModelProto { 1: ir_version (varint), 7: graph (bytes), 14: metadata_props (repeated
//                StringStringEntryProto { 1: key (string), 2: value (string) }), ... }
// Every other field is skipped by its wire type, so the (large) graph is never decoded.
// ---------------------------------------------------------------------------------------------

export class OnnxFormatError extends Error {}

function readVarint(buf, pos, end) {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new OnnxFormatError('truncated varint');
    const b = buf[pos++];
    value += (b & 0x7f) * mul;
    if (!(b & 0x80)) return [value, pos];
    mul *= 128;
  }
  throw new OnnxFormatError('varint longer than 10 bytes');
}

// Calls visit(field, wireType, value, start, end) for each field in buf[start:end]:
// value is the varint for wire type 0, else undefined; [start, end) is a length-delimited payload.
function walkFields(buf, start, end, visit) {
  let pos = start;
  while (pos < end) {
    let key;
    [key, pos] = readVarint(buf, pos, end);
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (field === 0) throw new OnnxFormatError('field number 0');
    if (wire === 0) {
      let v;
      [v, pos] = readVarint(buf, pos, end);
      visit(field, wire, v, pos, pos);
    } else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      if (pos + n > end) throw new OnnxFormatError('truncated fixed-size field');
      pos += n;
    } else if (wire === 2) {
      let len;
      [len, pos] = readVarint(buf, pos, end);
      if (pos + len > end) throw new OnnxFormatError(`field ${field} runs past the end of the data`);
      visit(field, wire, undefined, pos, pos + len);
      pos += len;
    } else {
      throw new OnnxFormatError(`unsupported protobuf wire type ${wire}`);
    }
  }
}

/**
 * Reads an ONNX file's metadata_props.
 * @param {Uint8Array} bytes the whole .onnx file
 * @returns {{irVersion: number, props: Object<string, string>}}
 * @throws {OnnxFormatError} when the bytes are not an ONNX ModelProto
 */
export function readOnnxMetadata(bytes) {
  const utf8 = new TextDecoder('utf-8');
  const props = {};
  let irVersion = null;
  let hasGraph = false;
  walkFields(bytes, 0, bytes.length, (field, wire, value, start, end) => {
    if (field === 1 && wire === 0) irVersion = value;
    else if (field === 7 && wire === 2) hasGraph = true;
    else if (field === 14 && wire === 2) {
      let k = '';
      let v = '';
      walkFields(bytes, start, end, (f, w, _v, s, e) => {
        if (w !== 2) return;
        if (f === 1) k = utf8.decode(bytes.subarray(s, e));
        else if (f === 2) v = utf8.decode(bytes.subarray(s, e));
      });
      props[k] = v;
    }
  });
  if (irVersion === null || !hasGraph) {
    throw new OnnxFormatError(irVersion === null ? 'no ir_version field' : 'no graph');
  }
  return { irVersion, props };
}

// ---------------------------------------------------------------------------------------------
// Deterministic noise: mulberry32 (32-bit state) -> uniforms in (0, 1) -> Box–Muller normals.
// Reproducible in any language with 32-bit integer arithmetic (tests/test_web_app.py does it
// in Python): z[2k], z[2k+1] come from the uniforms u1 = (r[2k] + 0.5) / 2^32, u2 = (r[2k+1] + 0.5) / 2^32
// as sqrt(-2 ln u1) * cos(2 pi u2) and sqrt(-2 ln u1) * sin(2 pi u2).
// ---------------------------------------------------------------------------------------------

export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** count standard-normal float32 values from seed (uint32). */
export function normalNoise(seed, count) {
  const next = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u1 = (next() + 0.5) / 4294967296;
    const u2 = (next() + 0.5) / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < count) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pixels <-> tensors (the contract: x = u8 / 127.5 - 1 ; u8 = round((clip(y, -1, 1) + 1) * 127.5)).
// ---------------------------------------------------------------------------------------------

export function toU8(y) {
  const c = y < -1 ? -1 : y > 1 ? 1 : y;
  return Math.round((c + 1) * 127.5);
}

// PIL's "L" conversion (ITU-R 601-2 luma, fixed point), so grayscale inputs match Python's.
export function luma(r, g, b) {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/**
 * RGBA pixels (ImageData.data) -> float32 CHW in [-1, 1] with cin channels (1 L, 2 LA, 3 RGB, 4 RGBA).
 */
export function pixelsToCHW(rgba, width, height, cin) {
  const hw = width * height;
  const out = new Float32Array(cin * hw);
  for (let p = 0; p < hw; p++) {
    const r = rgba[4 * p];
    const g = rgba[4 * p + 1];
    const b = rgba[4 * p + 2];
    const a = rgba[4 * p + 3];
    let vals;
    if (cin === 1) vals = [luma(r, g, b)];
    else if (cin === 2) vals = [luma(r, g, b), a];
    else if (cin === 3) vals = [r, g, b];
    else vals = [r, g, b, a];
    for (let c = 0; c < cin; c++) out[c * hw + p] = vals[c] / 127.5 - 1;
  }
  return out;
}

/**
 * One CHW image (channels c, starting at offset in data) -> RGBA bytes written into dst
 * (an ImageData.data of width dstW) at (x0, y0). 1: gray, 2: gray+alpha, 3: RGB, 4: RGBA,
 * any other count: channel 0 as gray.
 */
export function chwToPixels(data, offset, c, h, w, dst, dstW, x0, y0) {
  const hw = h * w;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = offset + y * w + x;
      const q = 4 * ((y0 + y) * dstW + x0 + x);
      let r, g, b, a = 255;
      if (c === 3 || c === 4) {
        r = toU8(data[p]);
        g = toU8(data[p + hw]);
        b = toU8(data[p + 2 * hw]);
        if (c === 4) a = toU8(data[p + 3 * hw]);
      } else {
        r = g = b = toU8(data[p]);
        if (c === 2) a = toU8(data[p + hw]);
      }
      dst[q] = r;
      dst[q + 1] = g;
      dst[q + 2] = b;
      dst[q + 3] = a;
    }
  }
}

/** Grid layout for n tiles: one row per class ("all") or a near-square block. */
export function gridLayout(n, rowsPerClass) {
  if (rowsPerClass) return { rows: rowsPerClass, cols: n };
  const cols = Math.ceil(Math.sqrt(n));
  return { rows: Math.ceil(n / cols), cols };
}

// ---------------------------------------------------------------------------------------------
// Tiled translation, the same plan as condgan.tiling and condgan_runtime.tiling (Python): equal
// tiles spread evenly along each axis, overlapping by at least `overlap` (at most a third of the
// tile); each tile weighted by a separable window that is 1 inside, a sin² ramp `overlap` pixels
// long centred in every overlap with a neighbour, 0 beyond it; the weighted sum over tiles is
// divided by the summed weights (rows x columns, separable).
// ---------------------------------------------------------------------------------------------

export function roundTile(tile, multiple) {
  return Math.ceil(tile / multiple) * multiple;
}

/** [{start, size, before, after, ramp}] of the tiles along one axis of `length` pixels. */
export function axisTiles(length, tile, overlap) {
  if (length <= tile) return [{ start: 0, size: length, before: 0, after: 0, ramp: 0 }];
  const ramp = Math.max(0, Math.min(overlap, Math.floor(tile / 3)));
  const n = Math.ceil((length - ramp) / (tile - ramp));
  const starts = Array.from({ length: n }, (_, i) => Math.floor((i * (length - tile)) / (n - 1)));
  const shared = [0, ...starts.slice(1).map((s, i) => starts[i] + tile - s), 0];
  return starts.map((start, i) => ({ start, size: tile, before: shared[i], after: shared[i + 1], ramp }));
}

/** The 1-D window of one tile (Float32Array of t.size weights). */
export function rampWindow(t) {
  const w = new Float64Array(t.size).fill(1);
  const k = (i) => (0.5 * Math.PI * (i + 0.5)) / Math.max(t.ramp, 1);
  if (t.before) {
    const lo = Math.floor((t.before - t.ramp) / 2);
    for (let i = 0; i < lo; i++) w[i] = 0;
    for (let i = 0; i < t.ramp; i++) w[lo + i] = Math.sin(k(i)) ** 2;
  }
  if (t.after) {
    const hi = t.size - t.after + Math.floor((t.after - t.ramp) / 2);
    for (let i = 0; i < t.ramp; i++) w[hi + i] *= Math.cos(k(i)) ** 2;
    for (let i = hi + t.ramp; i < t.size; i++) w[i] = 0;
  }
  return Float32Array.from(w);
}
