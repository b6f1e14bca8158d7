// The in-browser demo (web/), served by the real face-server at /demo, in Debian's headless
// Chromium driven by playwright-core. The page's face counts are checked against the server's own
// REST detect on the same photos (same engine, same default threshold); verify and group on photos
// of one person and of two; the messages for a photo without a face, for broken files and for a
// camera that is refused; and the layout at phone width. Screenshots go to FACE_ARTIFACTS.
// Run by `cargo xtask web-test`, which sets the FACE_* variables below.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdtemp, mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";
import { deflateSync } from "node:zlib";
import { tmpdir } from "node:os";
import path from "node:path";

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (cargo xtask web-test sets it)`);
  return value;
}

const SERVER = need("FACE_SERVER");
const GUEST = need("FACE_GUEST");
const MODELS = need("FACE_MODELS");
const GUEST_CACHE = need("FACE_GUEST_CACHE");
const DEMO = need("FACE_DEMO");
const PHOTOS = need("FACE_PHOTOS");
const ARTIFACTS = need("FACE_ARTIFACTS");
const TOOLS = need("FACE_NPM_TOOLS");
const CHROMIUM = process.env.FACE_CHROMIUM ?? "/usr/bin/chromium";
const KEY = "demo-key";

const { chromium } = createRequire(path.join(TOOLS, "package.json"))("playwright-core");

// --- helpers -----------------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function pngChunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "ascii");
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
/** A valid width x height uniform grey RGB PNG, stored uncompressed (deflate level 0), so well over 1 KB. */
function greyPng(width, height, level = 128) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const rows = Buffer.alloc((width * 3 + 1) * height, level);
  for (let y = 0; y < height; y++) rows[y * (width * 3 + 1)] = 0; // filter: none
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", header),
    pngChunk("IDAT", deflateSync(rows, { level: 0 })),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

// --- the server and the browser ----------------------------------------------------------------

let server;
let serverLog = "";
let serverExit = null;
let base;
let tmp;
let browser;
let context;
let page;
const pageErrors = [];
const consoleErrors = [];

/** The face rectangles the server's REST detect finds in a photo (a name in FACE_PHOTOS or a
 * full path), as "left,top,width,height". */
async function restDetect(file) {
  const response = await fetch(`${base}/face/v1.0/detect`, {
    method: "POST",
    headers: { "Ocp-Apim-Subscription-Key": KEY, "Content-Type": "application/octet-stream" },
    body: await readFile(path.isAbsolute(file) ? file : path.join(PHOTOS, file)),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await response.text();
  assert.equal(response.status, 200, `REST detect of ${file}: ${response.status} ${text}`);
  const faces = JSON.parse(text);
  assert.ok(Array.isArray(faces), `REST detect of ${file} is not an array: ${text}`);
  return faces.map(({ faceRectangle: r }) => `${r.left},${r.top},${r.width},${r.height}`).sort();
}

/** Gives the page files through its file input and waits until each one's card is finished. */
async function addFiles(files) {
  await page.getByLabel("Open photos…").setInputFiles(files);
  const names = files.map((f) => (typeof f === "string" ? path.basename(f) : f.name));
  for (const name of names) {
    await page.locator(`[data-testid="photo"][data-file="${name}"]:not([data-state="working"])`).waitFor({ timeout: 90_000 });
  }
  return names.map((name) => page.locator(`[data-testid="photo"][data-file="${name}"]`));
}

async function faceCount(card) {
  return Number(await card.getAttribute("data-face-count"));
}

/** Waits for the comparison of the faces now chosen in the two selects, and reads it. */
async function compareResult() {
  const a = await page.getByLabel("Face A", { exact: true }).inputValue();
  const b = await page.getByLabel("Face B", { exact: true }).inputValue();
  await page.waitForFunction(([a, b]) => {
    const out = document.querySelector('[data-testid="compare-result"]');
    return out.dataset.a === a && out.dataset.b === b && out.dataset.identical !== undefined;
  }, [a, b], { timeout: 30_000 });
  const out = page.getByTestId("compare-result");
  return {
    identical: await out.getAttribute("data-identical"),
    confidence: Number(await out.getAttribute("data-confidence")),
    text: await out.textContent(),
  };
}

describe("the in-browser demo served by face-server", { timeout: process.env.FACE_SHARED_DATA ? 1_200_000 : 900_000 }, () => {
  before(async () => {
    tmp = await mkdtemp(path.join(tmpdir(), "face-demo-"));
    await mkdir(ARTIFACTS, { recursive: true });
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = spawn(SERVER, [
      "Eula=accept", "Billing=http://127.0.0.1:9/", `ApiKey=${KEY}`, `Server:Address=127.0.0.1:${port}`,
      "Storage:Scenario=Memory", `Storage:DataDirectory=${path.join(tmp, "data")}`, `Engine:Guest=${GUEST}`,
      `Engine:Models=${MODELS}`, `Engine:Cache=${GUEST_CACHE}`, "Engine:PoolSize=1", `Server:Demo=${DEMO}`,
    ], { stdio: ["ignore", "pipe", "pipe"] });
    const keep = (chunk) => { serverLog = (serverLog + chunk).slice(-20_000); };
    server.stdout.on("data", keep);
    server.stderr.on("data", keep);
    server.on("exit", (code, signal) => { serverExit = { code, signal }; });

    const deadline = Date.now() + 180_000;
    for (;;) {
      if (serverExit) throw new Error(`face-server exited (${JSON.stringify(serverExit)}):\n${serverLog}`);
      try {
        const response = await fetch(`${base}/ready`, { signal: AbortSignal.timeout(5_000) });
        if (response.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`face-server was not ready within 180 s:\n${serverLog}`);
      await sleep(500);
    }

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // The fake device gives the camera tests a real getUserMedia with a synthetic camera; whether
      // the page may use it is up to each context's permissions.
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--use-fake-device-for-media-stream"],
      timeout: 60_000,
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(30_000);
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    if (server && !serverExit) {
      server.kill("SIGTERM");
      for (let i = 0; i < 100 && !serverExit; i++) await sleep(100);
      if (!serverExit) server.kill("SIGKILL");
    }
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test("the page loads from /demo and the engine gets ready", { timeout: 200_000 }, async () => {
    const response = await page.goto(`${base}/demo`);
    assert.equal(response.status(), 200);
    assert.equal(new URL(page.url()).pathname, "/demo/", "/demo redirects to the folder");
    // Ready, failed, or a script error in the page: whichever comes first.
    const crashed = page.waitForEvent("pageerror", { timeout: 180_000 }).then((e) => { throw e; });
    crashed.catch(() => {});
    await Promise.race([page.waitForSelector('body[data-ready="true"], body[data-ready="error"]', { timeout: 180_000 }), crashed]);
    const ready = await page.locator("body").getAttribute("data-ready");
    const messages = await page.getByTestId("messages").textContent();
    assert.equal(ready, "true", `engine failed to load: ${messages}\n${pageErrors.join("\n")}`);
    const version = (await page.getByTestId("engine-version").textContent()).trim();
    assert.ok(version.length > 0 && version !== "loading…", `engine version shown: ${version}`);
    assert.equal((await page.getByTestId("footer-version").textContent()).trim(), version);
    assert.equal(await page.getByTestId("loading").isHidden(), true);
    // The engine runs in the package's worker, not in the page.
    assert.equal((await page.locator("#engine-mode").textContent()).trim(), "(running in a Web Worker)");
  });

  test("the faces drawn match the server's REST detect for each photo", { timeout: 240_000 }, async () => {
    for (const file of ["obama.jpg", "biden.jpg", "32bit.png"]) {
      const rest = await restDetect(file);
      const expected = rest.length;
      const [card] = await addFiles([path.join(PHOTOS, file)]);
      assert.equal(await card.getAttribute("data-state"), expected ? "done" : "no-face", `${file}: ${await card.textContent()}`);
      assert.equal(await faceCount(card), expected, `${file}: faces drawn vs REST detect`);
      assert.ok(expected >= 1, `${file} has a face`);
      // One table row per face drawn, with the very rectangles the server reports.
      const rows = card.locator("tbody tr");
      assert.equal(await rows.count(), expected);
      const rects = (await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.rect))).sort();
      assert.deepEqual(rects, rest, `${file}: the page's rectangles vs REST detect`);
      // The attributes the engine returns (the page loads the two attribute models).
      const first = rows.first();
      assert.match(await first.locator('[data-label="Age"]').textContent(), /^\d+$/, `${file}: age`);
      assert.match(await first.locator('[data-label="Gender"]').textContent(), /^(male|female) \(\d+%\)$/, `${file}: gender`);
      assert.match(await first.locator('[data-label="Blur"]').textContent(), /^(low|medium|high) \(/, `${file}: blur`);
      assert.equal(await card.locator("canvas.photo-canvas").count(), 1);
      const timings = await card.getByTestId("timings").textContent();
      assert.match(timings, /Read file.*Engine detect.*Photo total/s);
    }
  });

  test("the attributes shown are the server's for the same photo", { timeout: 120_000 }, async () => {
    const all = "age,gender,headPose,smile,facialHair,glasses,emotion,hair,makeup,occlusion,accessories,blur,exposure,noise";
    const response = await fetch(`${base}/face/v1.0/detect?returnFaceAttributes=${all}`, {
      method: "POST",
      headers: { "Ocp-Apim-Subscription-Key": KEY, "Content-Type": "application/octet-stream" },
      body: await readFile(path.join(PHOTOS, "obama.jpg")),
      signal: AbortSignal.timeout(60_000),
    });
    const [rest] = await response.json();
    const row = page.locator('[data-testid="photo"][data-file="obama.jpg"] tr[data-attributes]').first();
    const shown = JSON.parse(await row.getAttribute("data-attributes"));
    const r = rest.faceAttributes;
    const close = (a, b, tol, what) => assert.ok(Math.abs(a - b) <= tol, `${what}: page ${a}, REST ${b}`);
    close(shown.age, r.age, 0.1, "age");
    assert.equal(shown.gender, r.gender);
    close(shown.smile, r.smile, 0.002, "smile");
    for (const k of ["roll", "yaw", "pitch"]) close(shown.headPose[k], r.headPose[k], 0.1, `headPose.${k}`);
    close(shown.blur, r.blur.value, 0.002, "blur");
    close(shown.exposure, r.exposure.value, 0.002, "exposure");
    close(shown.noise, r.noise.value, 0.002, "noise");
    assert.equal(Object.keys(r).length, 14, "REST returns the fourteen groups");
    for (const k of ["anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]) {
      close(shown.emotion[k], r.emotion[k], 0.002, `emotion.${k}`);
    }
    // The package spells enums as the spec does (noGlasses), the service as Azure does (NoGlasses).
    assert.equal(shown.glasses.toLowerCase(), r.glasses.toLowerCase());
    for (const k of ["moustache", "beard", "sideburns"]) close(shown.facialHair[k], r.facialHair[k], 0.002, `facialHair.${k}`);
    close(shown.hair.bald, r.hair.bald, 0.002, "hair.bald");
    assert.equal(shown.hair.invisible, r.hair.invisible);
    assert.deepEqual(shown.hair.hairColor.map((c) => c.color), r.hair.hairColor.map((c) => c.color), "hair colours in order");
    shown.hair.hairColor.forEach((c, i) => close(c.confidence, r.hair.hairColor[i].confidence, 0.002, `hairColor.${c.color}`));
    assert.deepEqual(shown.makeup, r.makeup);
    assert.deepEqual(shown.occlusion, r.occlusion);
    assert.deepEqual(shown.accessories.map((x) => x.type), r.accessories.map((x) => x.type));
    // The page shows them.
    const appearance = await row.locator('[data-label="Appearance"]').textContent();
    assert.match(appearance, /glasses/, `appearance cell: ${appearance}`);
  });

  test("verify: one person is identical, two people are not", { timeout: 120_000 }, async () => {
    await addFiles([path.join(PHOTOS, "obama2.jpg")]);
    // Through the two labelled selects...
    await page.getByLabel("Face A", { exact: true }).selectOption({ label: "obama.jpg · face 1" });
    await page.getByLabel("Face B", { exact: true }).selectOption({ label: "obama2.jpg · face 1" });
    const same = await compareResult();
    assert.equal(same.identical, "true", same.text);
    assert.ok(same.confidence > 0.5 && same.confidence <= 1, same.text);
    assert.match(same.text, /Same person/);
    // ...and with the keyboard, through a face's "B" button in its photo's table.
    await page.getByRole("button", { name: "Use biden.jpg · face 1 as face B" }).press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement.id), "face-b");
    const other = await compareResult();
    assert.match(other.text, /obama\.jpg · face 1 vs biden\.jpg · face 1/);
    assert.equal(other.identical, "false", other.text);
    assert.ok(other.confidence >= 0 && other.confidence < 0.5, other.text);
    assert.match(other.text, /Different people/);
  });

  test("group: the two Obama photos share a group that Biden is not in", { timeout: 60_000 }, async () => {
    await page.getByRole("button", { name: "Group all faces" }).click();
    const result = page.getByTestId("group-result");
    await page.waitForSelector('[data-testid="group-result"][data-groups]');
    const groups = await result.locator('[data-testid="group"]').allTextContents();
    const obama = groups.find((g) => g.includes("obama.jpg · face 1"));
    assert.ok(obama, `a group with obama.jpg: ${await result.textContent()}`);
    assert.ok(obama.includes("obama2.jpg · face 1"), `obama2.jpg with obama.jpg: ${obama}`);
    assert.ok(!obama.includes("biden.jpg"), `biden.jpg apart: ${obama}`);
  });

  test("a photo without a face says so", { timeout: 60_000 }, async () => {
    const png = greyPng(200, 200);
    assert.ok(png.length > 1024);
    const [card] = await addFiles([{ name: "grey.png", mimeType: "image/png", buffer: png }]);
    assert.equal(await card.getAttribute("data-state"), "no-face");
    assert.equal(await faceCount(card), 0);
    await assert.doesNotReject(page.getByTestId("messages").getByText("No face found in grey.png.").waitFor());
  });

  test("broken files get the engine's error, in words", { timeout: 60_000 }, async () => {
    // A JPEG start marker, then noise: a JPEG that cannot be decoded.
    const corrupt = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(4092)]);
    // Noise with no image signature at all.
    const noise = Buffer.concat([Buffer.from("RAND"), randomBytes(4092)]);
    const [corruptCard, noiseCard] = await addFiles([
      { name: "corrupt.jpg", mimeType: "image/jpeg", buffer: corrupt },
      { name: "noise.jpg", mimeType: "image/jpeg", buffer: noise },
    ]);
    assert.equal(await corruptCard.getAttribute("data-state"), "error");
    assert.equal(await corruptCard.getAttribute("data-error"), "CorruptImage");
    assert.equal(await noiseCard.getAttribute("data-error"), "UnsupportedFormat");
    const messages = page.getByTestId("messages");
    await messages.getByText("corrupt.jpg could not be decoded: the image data is damaged or incomplete.").waitFor();
    await messages.getByText("noise.jpg is not an image the engine can read").waitFor();
    assert.match(await messages.textContent(), /CorruptImage: the image could not be decoded/);
  });

  test("a photo dropped on the drop zone, with the network off, is detected like any other", { timeout: 60_000 }, async () => {
    const rest = await restDetect("obama3.jpg");
    // Everything the page needs is loaded: from here on it works offline.
    await context.setOffline(true);
    try {
      const bytes = [...(await readFile(path.join(PHOTOS, "obama3.jpg")))];
      const dataTransfer = await page.evaluateHandle((bytes) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array(bytes)], "obama3.jpg", { type: "image/jpeg" }));
        return transfer;
      }, bytes);
      await page.getByTestId("dropzone").dispatchEvent("dragenter", { dataTransfer });
      await page.getByTestId("dropzone").dispatchEvent("drop", { dataTransfer });
      const card = page.locator('[data-testid="photo"][data-file="obama3.jpg"]:not([data-state="working"])');
      await card.waitFor({ timeout: 60_000 });
      assert.equal(await faceCount(card), rest.length);
    } finally {
      await context.setOffline(false);
    }
  });

  test("screenshots: the page with its faces, on a desktop and at phone width", { timeout: 60_000 }, async () => {
    const desktop = path.join(ARTIFACTS, "demo.png");
    await page.getByTestId("photos").scrollIntoViewIfNeeded();
    await page.screenshot({ path: desktop, fullPage: true });
    assert.ok((await stat(desktop)).size > 10_000, "demo.png is written");

    await page.setViewportSize({ width: 375, height: 812 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling at 375 px (${overflow} px too wide)`);
    const phone = path.join(ARTIFACTS, "demo-375.png");
    await page.screenshot({ path: phone, fullPage: true });
    assert.ok((await stat(phone)).size > 10_000, "demo-375.png is written");
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  test("a refused camera gets a clear message", { timeout: 120_000 }, async () => {
    // A fresh context that was never granted the camera: Chromium refuses getUserMedia for it.
    const refused = await browser.newContext();
    try {
      const p = await refused.newPage();
      const errors = [];
      p.on("pageerror", (e) => errors.push(String(e)));
      await p.goto(`${base}/demo/`);
      await p.waitForSelector('body[data-ready="true"]', { timeout: 180_000 });
      await p.getByRole("button", { name: "Use camera" }).click();
      const message = p.getByTestId("camera-message");
      await message.waitFor({ timeout: 30_000 });
      assert.match(await message.textContent(), /Camera access was refused/);
      assert.equal(await p.getByTestId("camera").isHidden(), true);
      assert.equal(await p.getByRole("button", { name: "Use camera" }).isEnabled(), true);
      assert.deepEqual(errors, []);
    } finally {
      await refused.close();
    }
  });

  test("an allowed camera runs live detection until stopped", { timeout: 60_000 }, async () => {
    await context.grantPermissions(["camera"], { origin: base });
    await page.getByRole("button", { name: "Use camera" }).click();
    await page.getByTestId("camera").waitFor();
    // Chromium's fake camera shows a test pattern: no face, but frames go through the engine.
    await page.waitForFunction(() => /frames\/s/.test(document.querySelector('[data-testid="camera-stats"]').textContent), null, { timeout: 30_000 });
    assert.match(await page.getByTestId("camera-stats").textContent(), /\d+ faces? · frame \d+×\d+ · capture .* · detect .*/);
    await page.getByRole("button", { name: "Stop camera" }).click();
    assert.equal(await page.getByTestId("camera").isHidden(), true);
  });

  // With FACE_SHARED_DATA (the labelled data beside the repo, for the acceptance run): every
  // group photo of detection/group, faces drawn against the engine's count through REST.
  const shared = process.env.FACE_SHARED_DATA;
  if (shared) test("shared data: the faces drawn on each group photo match the engine's count", { timeout: 240_000 }, async () => {
    const dir = path.join(shared, "detection", "group");
    const files = (await readdir(dir)).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
    let faces = 0;
    for (const file of files) {
      const full = path.join(dir, file);
      if ((await stat(full)).size > 6 * 1024 * 1024) continue;
      const expected = (await restDetect(full)).length;
      const [card] = await addFiles([full]);
      assert.equal(await faceCount(card), expected, `${file}: faces drawn vs the engine's count`);
      faces += expected;
      await card.getByRole("button", { name: /Remove/ }).click();
    }
    console.log(`shared data: ${files.length} group photos, ${faces} faces, every count equal to the engine's`);
  });

  // Swagger UI at /swagger, as a user of the Azure container opens it first: "Authorize" with the
  // key, then "Try it out" on detect (the photo's bytes, picked with the file input the
  // application/octet-stream body gives) and on a PersonGroup's create (a JSON body), each
  // answered 200; the group is then read back through REST.
  test("Swagger UI's Try it out runs a detect on an uploaded photo and creates a person group", { timeout: 120_000 }, async () => {
    const swagger = await context.newPage();
    const errors = [];
    swagger.on("pageerror", (e) => errors.push(String(e)));
    await swagger.goto(`${base}/swagger`);
    await swagger.locator(".opblock").first().waitFor();
    await swagger.locator("button.authorize").first().click();
    await swagger.locator(".modal-ux input").first().fill(KEY);
    await swagger.locator(".modal-ux button.authorize").click();
    await swagger.locator(".modal-ux button.btn-done").click();
    const answer = async (op) => {
      await op.locator("button.execute").click();
      const row = op.locator(".live-responses-table tbody tr.response").first();
      await row.waitFor();
      return { status: (await row.locator(".response-col_status").textContent()).trim(), text: await row.locator(".response-col_description").textContent() };
    };

    const detect = swagger.locator("#operations-Face-Face_DetectWithUrl");
    await detect.locator(".opblock-summary").click();
    await detect.locator("button.try-out__btn").click();
    await detect.locator(".opblock-section-request-body select").selectOption("application/octet-stream");
    await detect.locator('input[type="file"]').setInputFiles(path.join(PHOTOS, "obama.jpg"));
    const detected = await answer(detect);
    assert.equal(detected.status, "200", detected.text);
    // The same face as REST's detect of the same photo.
    const rest = await restDetect(path.join(PHOTOS, "obama.jpg"));
    assert.equal(rest.length, 1);
    const [left, top, width, height] = rest[0].split(",");
    const shown = detected.text.replace(/\s+/g, "");
    assert.ok(shown.includes(`"faceRectangle":{"top":${top},"left":${left},"width":${width},"height":${height}}`), detected.text);

    const create = swagger.locator("#operations-PersonGroup-PersonGroup_Create");
    await create.locator(".opblock-summary").click();
    await create.locator("button.try-out__btn").click();
    await create.locator('tr[data-param-name="personGroupId"] input').fill("from-swagger");
    await create.locator("textarea.body-param__text").fill(JSON.stringify({ name: "Made in Swagger UI", userData: "try it out" }));
    const created = await answer(create);
    assert.equal(created.status, "200", created.text);
    const read = await fetch(`${base}/face/v1.0/persongroups/from-swagger`, { headers: { "Ocp-Apim-Subscription-Key": KEY } });
    assert.equal(read.status, 200);
    assert.deepEqual(await read.json(), { personGroupId: "from-swagger", name: "Made in Swagger UI", userData: "try it out" });
    await swagger.screenshot({ path: path.join(ARTIFACTS, "swagger-try-it-out.png") });
    await swagger.close();
    assert.deepEqual(errors, []);
  });

  test("no uncaught errors in the page", () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(consoleErrors, []);
  });
});
