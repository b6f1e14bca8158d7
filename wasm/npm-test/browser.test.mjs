// The npm package in a real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): a page on loopback imports the package's browser entry, loads the models by
// URL and detects faces in a real photo. Run by `cargo xtask npm-test`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";

const pkg = process.env.FACE_NPM_PKG;
const models = process.env.FACE_MODELS_DIR;
const photos = process.env.FACE_TESTDATA;
const CHROMIUM = process.env.FACE_CHROMIUM ?? "/usr/bin/chromium";

const PAGE = `<!doctype html><meta charset="utf-8"><title>face-engine-wasm</title>
<script type="module">
import { FaceEngine, verify, version } from "/pkg/index.js";
try {
  const engine = await FaceEngine.create({
    detector: "/models/face_detection_yunet_2023mar.onnx", landmarks68: "/models/faceapi_landmark68.onnx",
    sface: "/models/face_recognition_sface_2021dec.onnx", faceapiRecognizer: "/models/faceapi_recognition.onnx" });
  const bytes = async (name) => new Uint8Array(await (await fetch("/photos/" + name)).arrayBuffer());
  const options = { recognition: "sface_2021dec" };
  const a = engine.detect(await bytes("obama.jpg"), options);
  const b = engine.detect(await bytes("obama2.jpg"), options);
  const c = engine.detect(await bytes("biden.jpg"), options);
  // Pixels from a canvas, as the camera path does.
  const img = await createImageBitmap(new Blob([await bytes("obama.jpg")]));
  const canvas = new OffscreenCanvas(img.width, img.height);
  canvas.getContext("2d").drawImage(img, 0, 0);
  const pixels = engine.detect(canvas.getContext("2d").getImageData(0, 0, img.width, img.height));
  let error = null;
  try { engine.detect(new Uint8Array(16)); } catch (e) { error = e.name; }
  window.result = { version: version(), faces: a.length, pixelFaces: pixels.length, rectangle: a[0].rectangle,
    same: verify(a[0].embedding, b[0].embedding), other: verify(a[0].embedding, c[0].embedding), error };
} catch (e) {
  window.result = { failure: e.name + ": " + e.message };
}
</script>`;

const TYPES = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html", ".jpg": "image/jpeg", ".onnx": "application/octet-stream" };

function serve() {
  const roots = { "/pkg/": pkg, "/models/": models, "/photos/": photos };
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, "http://localhost");
      if (url.pathname === "/") {
        res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
        return;
      }
      const prefix = Object.keys(roots).find((p) => url.pathname.startsWith(p));
      const rel = prefix && path.normalize(decodeURIComponent(url.pathname.slice(prefix.length)));
      if (!prefix || rel.startsWith("..")) throw new Error("not found");
      const body = await readFile(path.join(roots[prefix], rel));
      res.writeHead(200, { "content-type": TYPES[path.extname(rel)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

test("the package detects and compares faces in headless Chromium", async () => {
  const server = await serve();
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
    await page.waitForFunction(() => window.result !== undefined, null, { timeout: 120_000 });
    const result = await page.evaluate(() => window.result);
    assert.equal(result.failure, undefined, `${result.failure}\n${logs.join("\n")}`);
    assert.equal(result.faces, 1);
    assert.equal(result.pixelFaces, 1);
    assert.ok(result.rectangle.width > 50);
    assert.equal(result.same.isIdentical, true);
    assert.equal(result.other.isIdentical, false);
    assert.equal(result.error, "FileTooSmall");
  } finally {
    await browser.close();
    server.close();
  }
});
