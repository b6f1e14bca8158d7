// The package as a web developer meets it: a fresh Vite app in an empty folder installs the packed
// tarball (and the pinned vite and typescript, from npm's cache), imports the package in a page,
// `tsc --noEmit` checks the page against the package's types, `vite build` bundles it, and the
// built folder, served on loopback, detects the faces in a photo given to a file input in headless
// Chromium, with the engine in the package's worker; the main thread's longest stall is measured.
// Nothing of this repository is referenced by the app. Run by `cargo xtask npm-test`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const pkg = process.env.FACE_NPM_PKG;
const photos = process.env.FACE_TESTDATA;
const CHROMIUM = process.env.FACE_CHROMIUM ?? "/usr/bin/chromium";
assert.ok(pkg && photos, "run through `cargo xtask npm-test`");
const pinned = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")).devDependencies;

const HTML = `<!doctype html>
<html>
  <head><meta charset="utf-8"><title>faces</title></head>
  <body>
    <label>Photo (worker) <input type="file" id="photo" accept="image/*"></label>
    <label>Photo (main thread) <input type="file" id="photo-main" accept="image/*"></label>
    <pre id="out"></pre>
    <script type="module" src="/src/main.ts"></script>
  </body>
</html>
`;

const MAIN = `import { FaceEngine, type Face, type WorkerFaceEngine } from "face-engine-wasm";

interface Run { faces?: Face[]; failure?: string; longestStallMs?: number; longTasksMs?: number[] }
declare global {
  interface Window { faceTest: { ready: boolean; failure?: string; worker?: Run; main?: Run } }
}
window.faceTest = { ready: false };

const engine: Promise<WorkerFaceEngine> = FaceEngine.createInWorker();
engine.then(
  () => { window.faceTest.ready = true; },
  (e: Error) => { window.faceTest.failure = e.name + ": " + e.message; },
);

// The main thread's responsiveness while a photo is worked on: the longest gap between timer
// ticks, and the long tasks (over 50 ms) Chromium reports.
let watching = false;
let last = performance.now();
let longest = 0;
const longTasks: number[] = [];
setInterval(() => {
  const now = performance.now();
  if (watching) longest = Math.max(longest, now - last);
  last = now;
}, 4);
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (watching) longTasks.push(entry.duration);
}).observe({ type: "longtask" });

async function measure(file: File, detect: (bytes: Uint8Array) => Promise<Face[]> | Face[]): Promise<Run> {
  watching = true;
  longest = 0;
  longTasks.length = 0;
  last = performance.now();
  const run: Run = {};
  try {
    run.faces = await detect(new Uint8Array(await file.arrayBuffer()));
    document.querySelector("#out")!.textContent = run.faces.map((f) => JSON.stringify(f.rectangle)).join("\\n");
  } catch (e) {
    run.failure = (e as Error).name + ": " + (e as Error).message;
  }
  // One more tick after the answer, so a stall at its very end is counted.
  await new Promise((resolve) => setTimeout(resolve, 20));
  watching = false;
  return { ...run, longestStallMs: longest, longTasksMs: [...longTasks] };
}

const input = (id: string) => document.querySelector<HTMLInputElement>(id)!;
input("#photo").addEventListener("change", async () => {
  const file = input("#photo").files?.[0];
  if (file) window.faceTest.worker = await measure(file, async (bytes) => (await engine).detect(bytes, { attributes: true }));
});
// The same photo on the main thread, for the comparison.
input("#photo-main").addEventListener("change", async () => {
  const file = input("#photo-main").files?.[0];
  if (!file) return;
  const local = await FaceEngine.create();
  window.faceTest.main = await measure(file, (bytes) => local.detect(bytes, { attributes: true }));
});
`;

// Vite's own TypeScript template's settings (npm create vite, vanilla-ts), less `types:
// ["vite/client"]`, which the page does not use.
const TSCONFIG = {
  compilerOptions: {
    target: "ES2022",
    useDefineForClassFields: true,
    module: "ESNext",
    lib: ["ES2022", "DOM", "DOM.Iterable"],
    skipLibCheck: true,
    moduleResolution: "bundler",
    allowImportingTsExtensions: true,
    verbatimModuleSyntax: true,
    moduleDetection: "force",
    noEmit: true,
    strict: true,
    noUnusedLocals: true,
    noUnusedParameters: true,
    erasableSyntaxOnly: true,
    noFallthroughCasesInSwitch: true,
    noUncheckedSideEffectImports: true,
  },
  include: ["src"],
};

// The package's own declarations checked too (the template skips them), against the newest
// library (wasm-bindgen's classes declare Symbol.dispose).
const TSCONFIG_LIBS = {
  extends: "./tsconfig.json",
  compilerOptions: { skipLibCheck: false, lib: ["ESNext", "DOM", "DOM.Iterable"] },
};

const TYPES = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html", ".css": "text/css" };

function serve(root) {
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, "http://localhost");
      const rel = path.normalize(decodeURIComponent(url.pathname === "/" ? "/index.html" : url.pathname)).slice(1);
      if (rel.startsWith("..")) throw new Error("outside");
      const body = await readFile(path.join(root, rel));
      res.writeHead(200, { "content-type": TYPES[path.extname(rel)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

function sizes(dir) {
  return readdirSync(dir, { recursive: true })
    .filter((f) => statSync(path.join(dir, f)).isFile())
    .map((f) => ({ file: f, bytes: statSync(path.join(dir, f)).size }))
    .sort((a, b) => b.bytes - a.bytes);
}

test("a fresh Vite app bundles the package, and its page detects faces off the main thread", async () => {
  const work = mkdtempSync(path.join(tmpdir(), "face-vite-"));
  const tarball = execFileSync("npm", ["pack", "--silent", "--pack-destination", work, pkg], { encoding: "utf8" }).trim().split("\n").pop();
  const app = path.join(work, "app");
  mkdirSync(path.join(app, "src"), { recursive: true });
  writeFileSync(path.join(app, "package.json"), JSON.stringify({
    name: "faces-app",
    private: true,
    type: "module",
    dependencies: { "face-engine-wasm": `file:../${tarball}` },
    devDependencies: { vite: pinned.vite, typescript: pinned.typescript },
  }, null, 2));
  writeFileSync(path.join(app, "index.html"), HTML);
  writeFileSync(path.join(app, "src/main.ts"), MAIN);
  writeFileSync(path.join(app, "tsconfig.json"), JSON.stringify(TSCONFIG, null, 2));
  writeFileSync(path.join(app, "tsconfig.libs.json"), JSON.stringify(TSCONFIG_LIBS, null, 2));
  // The pinned tools are in npm's cache from the test folder's own install.
  execFileSync("npm", ["install", "--silent", "--no-audit", "--no-fund", "--prefer-offline"], { cwd: app });
  for (const config of ["tsconfig.json", "tsconfig.libs.json"]) {
    execFileSync(path.join(app, "node_modules/.bin/tsc"), ["--noEmit", "-p", config], { cwd: app, stdio: "inherit" });
  }
  execFileSync(path.join(app, "node_modules/.bin/vite"), ["build", "--logLevel", "warn"], { cwd: app, stdio: "inherit" });

  const dist = path.join(app, "dist");
  const built = sizes(dist);
  console.log("vite build, dist/:\n" + built.map((s) => `  ${(s.bytes / 1e6).toFixed(2)} MB  ${s.file}`).join("\n"));
  // The wasm and the six models came along as assets.
  assert.equal(built.filter((s) => s.file.endsWith(".wasm")).length >= 1, true, "the wasm is in the build");
  assert.equal(built.filter((s) => s.file.endsWith(".onnx")).length >= 6, true, "the six models are in the build");

  const server = await serve(dist);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  try {
    const page = await browser.newPage();
    const logs = [];
    page.on("console", (m) => logs.push(m.text()));
    page.on("pageerror", (e) => logs.push(String(e)));
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.waitForFunction(() => window.faceTest?.ready || window.faceTest?.failure, null, { timeout: 180_000 });
    assert.equal(await page.evaluate(() => window.faceTest.failure), undefined, logs.join("\n"));

    await page.setInputFiles("#photo", path.join(photos, "obama.jpg"));
    await page.waitForFunction(() => window.faceTest.worker, null, { timeout: 120_000 });
    const inWorker = await page.evaluate(() => window.faceTest.worker);
    assert.equal(inWorker.failure, undefined, logs.join("\n"));
    assert.equal(inWorker.faces.length, 1);
    assert.ok(inWorker.faces[0].rectangle.width > 50);
    assert.equal(inWorker.faces[0].attributes.gender, "male");

    await page.setInputFiles("#photo-main", path.join(photos, "obama.jpg"));
    await page.waitForFunction(() => window.faceTest.main, null, { timeout: 180_000 });
    const onMain = await page.evaluate(() => window.faceTest.main);
    assert.equal(onMain.failure, undefined, logs.join("\n"));
    assert.deepEqual(onMain.faces[0].rectangle, inWorker.faces[0].rectangle);
    console.log(`main thread's longest stall while a photo is detected: in the worker ${inWorker.longestStallMs.toFixed(0)} ms ` +
      `(long tasks ${JSON.stringify(inWorker.longTasksMs.map(Math.round))}); on the main thread ${onMain.longestStallMs.toFixed(0)} ms`);
    // The probe sees a stall where there is one: the same photo on the main thread blocks it.
    assert.ok(onMain.longestStallMs > 100, `the stall probe saw only ${onMain.longestStallMs} ms on the main thread`);
    assert.ok(inWorker.longestStallMs < 50, `the main thread stalled ${inWorker.longestStallMs} ms`);
    assert.deepEqual(inWorker.longTasksMs, []);
  } finally {
    await browser.close();
    server.close();
  }
});
