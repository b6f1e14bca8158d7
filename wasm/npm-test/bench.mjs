// `cargo xtask bench`'s JavaScript side: median ms of the whole pipeline (detect + 68 landmarks +
// SFace embedding) on one photo, with the npm package in Node and in headless Chromium.
//     node bench.mjs PKG_DIR MODELS_DIR PHOTO RUNS   -> {"node": ms, "chromium": ms, "startup_node": ms}
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";

const [pkg, models, photo, runsText] = process.argv.slice(2);
const runs = Number(runsText);
const MODEL_FILES = { detector: "face_detection_yunet_2023mar.onnx", landmarks68: "faceapi_landmark68.onnx", sface: "face_recognition_sface_2021dec.onnx", faceapiRecognizer: "faceapi_recognition.onnx" };

const TIMING = `async function timePipeline(engine, bytes, runs) {
  const options = { recognition: "sface_2021dec" };
  for (let i = 0; i < 3; i++) engine.detect(bytes, options);
  const times = [];
  for (let i = 0; i < runs; i++) { const t = performance.now(); engine.detect(bytes, options); times.push(performance.now() - t); }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}`;
const timePipeline = new Function(`${TIMING}; return timePipeline;`)();

const { FaceEngine } = await import(path.join(pkg, "node.js"));
const started = performance.now();
const engine = await FaceEngine.create(Object.fromEntries(Object.entries(MODEL_FILES).map(([k, f]) => [k, path.join(models, f)])));
const startupNode = performance.now() - started;
const node = await timePipeline(engine, new Uint8Array(await readFile(photo)), runs);

const server = createServer(async (req, res) => {
  const url = new URL(req.url, "http://localhost");
  try {
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end(`<!doctype html><script type="module">
import { FaceEngine } from "/pkg/index.js";
${TIMING}
const engine = await FaceEngine.create(${JSON.stringify(Object.fromEntries(Object.entries(MODEL_FILES).map(([k, f]) => [k, "/models/" + f])))});
const bytes = new Uint8Array(await (await fetch("/photo")).arrayBuffer());
window.result = await timePipeline(engine, bytes, ${runs});
</script>`);
      return;
    }
    const file = url.pathname === "/photo" ? photo
      : url.pathname.startsWith("/pkg/") ? path.join(pkg, path.normalize(url.pathname.slice(5)))
      : path.join(models, path.basename(url.pathname));
    const type = file.endsWith(".js") ? "text/javascript" : file.endsWith(".wasm") ? "application/wasm" : "application/octet-stream";
    const body = await readFile(file);
    res.writeHead(200, { "content-type": type }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const browser = await chromium.launch({
  executablePath: process.env.FACE_CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => window.result !== undefined, null, { timeout: 300_000 });
  const chromiumMs = await page.evaluate(() => window.result);
  console.log(JSON.stringify({ node, chromium: chromiumMs, startup_node: startupNode }));
} finally {
  await browser.close();
  server.close();
}
