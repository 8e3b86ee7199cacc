// Copies the onnxruntime-web runtime files the page needs from node_modules into dist/.
// Run with `npm run build` after `npm ci`. No bundler: index.html imports dist/ort.min.mjs
// directly, and app.js points ort.env.wasm.wasmPaths at dist/, so nothing comes from a CDN.
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = join(here, 'node_modules', 'onnxruntime-web');
const srcDir = join(pkgDir, 'dist');
const outDir = join(here, 'dist');

// ort.min.mjs = the WebGPU (JSEP) + WASM build; it loads the matching .jsep.mjs/.wasm pair
// at run time from ort.env.wasm.wasmPaths.
const FILES = ['ort.min.mjs', 'ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'];

if (!existsSync(srcDir)) {
  console.error(`error: ${srcDir} is missing; run \`npm ci\` in export/web first`);
  process.exit(1);
}
const version = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version;
mkdirSync(outDir, { recursive: true });
let copied = 0;
for (const name of FILES) {
  const src = join(srcDir, name);
  const dst = join(outDir, name);
  if (!existsSync(src)) {
    console.error(`error: onnxruntime-web ${version} has no dist/${name}`);
    process.exit(1);
  }
  const s = statSync(src);
  if (existsSync(dst)) {
    const d = statSync(dst);
    if (d.size === s.size && d.mtimeMs >= s.mtimeMs) continue; // already up to date
  }
  copyFileSync(src, dst);
  copied += 1;
}
writeFileSync(join(outDir, 'ort-version.json'), JSON.stringify({ 'onnxruntime-web': version, files: FILES }, null, 2) + '\n');
console.log(`dist/: onnxruntime-web ${version}, ${copied} of ${FILES.length} files copied`);
