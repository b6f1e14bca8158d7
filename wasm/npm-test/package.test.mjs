// The npm package as a user gets it: packed, installed into an empty folder, used by a five-line
// script with no model paths (and one with the worker API); and its API (verify, findSimilar,
// group, errors) on real photos. Run by `cargo xtask npm-test`, which builds the package and sets
// FACE_NPM_PKG, FACE_MODELS_DIR and FACE_TESTDATA.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const pkg = process.env.FACE_NPM_PKG;
const models = process.env.FACE_MODELS_DIR;
const photos = process.env.FACE_TESTDATA;
assert.ok(pkg && models && photos, "run through `cargo xtask npm-test`");
const photo = (name) => path.join(photos, name);

// What a user writes: the packaged models, no paths, five lines.
const SCRIPT = `import { readFile } from "node:fs/promises";
import { FaceEngine, verify } from "face-engine-wasm";
const engine = await FaceEngine.create();
const [a, b, c] = await Promise.all(process.argv.slice(2).map(async (file) => engine.detect(await readFile(file), { recognition: "sface_2021dec", attributes: true })[0]));
console.log(JSON.stringify({ rectangle: a.rectangle, pupilLeft: a.landmarks.pupilLeft, gender: a.attributes.gender, same: verify(a.embedding, b.embedding), other: verify(a.embedding, c.embedding) }));
`;

// The same off the calling thread; no close(): an idle worker must not keep Node running.
const WORKER_SCRIPT = `import { readFile } from "node:fs/promises";
import { FaceEngine } from "face-engine-wasm";
const engine = await FaceEngine.createInWorker();
const faces = await engine.detect(await readFile(process.argv[2]));
const [a, b] = await Promise.all(process.argv.slice(2).map(async (file) => (await engine.detect(await readFile(file), { recognition: "sface_2021dec" }))[0].embedding));
let error = null, unsendable = null;
try { await engine.detect(new Uint8Array(10)); } catch (e) { error = e.name; }
try { await engine.detect(new Uint8Array(10), { onProgress() {} }); } catch (e) { unsendable = e.name; }
console.log(JSON.stringify({ faces: faces.length, version: await engine.version(), same: await engine.verify(a, b), error, unsendable }));
`;

test("the packed package installs into an empty folder and a five-line script uses its own models", () => {
  const work = mkdtempSync(path.join(tmpdir(), "face-npm-"));
  const tarball = execFileSync("npm", ["pack", "--silent", "--pack-destination", work, pkg], { encoding: "utf8" }).trim().split("\n").pop();
  const app = path.join(work, "app");
  mkdirSync(app);
  writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  execFileSync("npm", ["install", "--silent", "--no-audit", "--no-fund", "--offline", path.join(work, tarball)], { cwd: app });
  writeFileSync(path.join(app, "detect.mjs"), SCRIPT);
  assert.ok(SCRIPT.trim().split("\n").length <= 5);
  // No model path anywhere: not in the script, not in its environment.
  const env = { ...process.env };
  delete env.FACE_MODELS_DIR;
  const out = execFileSync("node", ["detect.mjs", photo("obama.jpg"), photo("obama2.jpg"), photo("biden.jpg")], {
    cwd: app,
    encoding: "utf8",
    env,
  });
  const result = JSON.parse(out);
  assert.ok(result.rectangle.width > 50 && result.rectangle.height > 50);
  assert.ok(result.pupilLeft.x > result.rectangle.left && result.pupilLeft.x < result.rectangle.left + result.rectangle.width);
  assert.equal(result.gender, "male");
  assert.equal(result.same.isIdentical, true);
  assert.equal(result.other.isIdentical, false);
  assert.ok(result.same.confidence > result.other.confidence);

  writeFileSync(path.join(app, "worker.mjs"), WORKER_SCRIPT);
  const inWorker = JSON.parse(execFileSync("node", ["worker.mjs", photo("obama.jpg"), photo("obama2.jpg")], {
    cwd: app,
    encoding: "utf8",
    env,
    timeout: 120_000,
  }));
  assert.equal(inWorker.faces, 1);
  assert.match(inWorker.version, /^\d+\.\d+\.\d+$/);
  assert.equal(inWorker.same.isIdentical, true);
  assert.equal(inWorker.error, "FileTooSmall");
  // Options the structured clone refuses fail that call only; the script still ends by itself
  // (the timeout above would kill a worker left holding Node open).
  assert.equal(inWorker.unsendable, "InvalidArgument");
});

test("the API: pixels, findSimilar, group, version, and named errors", async () => {
  const { FaceEngine, findSimilar, group, version } = await import(path.join(pkg, "node.js"));
  const m = (name) => path.join(models, name);
  const engine = await FaceEngine.create({
    detector: m("face_detection_yunet_2023mar.onnx"),
    landmarks68: readFileSync(m("faceapi_landmark68.onnx")),
    sface: m("face_recognition_sface_2021dec.onnx"),
    faceapiRecognizer: m("faceapi_recognition.onnx"),
    ageGender: m("faceapi_age_gender.onnx"),
    expression: m("faceapi_expression.onnx"),
  });
  const [withAttributes] = engine.detect(readFileSync(photo("obama.jpg")), { attributes: true });
  const a = withAttributes.attributes;
  assert.equal(a.gender, "male");
  assert.ok(a.age > 25 && a.age < 90, `age ${a.age}`);
  assert.equal(a.expressions.length, 7);
  assert.ok(["low", "medium", "high"].includes(a.exposure.level));
  // A near-frontal, upright face: small angles.
  for (const angle of ["roll", "yaw", "pitch"]) assert.ok(Math.abs(a.headPose[angle]) < 25, `${angle} ${a.headPose[angle]}`);
  // The Face API's other groups, in its shapes.
  const emotions = Object.values(a.emotion);
  assert.equal(emotions.length, 8);
  assert.ok(Math.abs(emotions.reduce((x, y) => x + y) - 1) < 1e-3, `emotions ${JSON.stringify(a.emotion)}`);
  assert.equal(a.glasses, "noGlasses");
  assert.deepEqual(Object.keys(a.facialHair).sort(), ["beard", "moustache", "sideburns"]);
  assert.equal(typeof a.hair.invisible, "boolean");
  assert.ok(a.hair.invisible || a.hair.hairColor.length === 7, JSON.stringify(a.hair));
  assert.deepEqual(Object.keys(a.makeup).sort(), ["eyeMakeup", "lipMakeup"]);
  assert.deepEqual(Object.keys(a.occlusion).sort(), ["eyeOccluded", "foreheadOccluded", "mouthOccluded"]);
  assert.ok(Array.isArray(a.accessories));
  assert.match(version(), /^\d+\.\d+\.\d+$/);
  const embed = (name) => engine.detect(readFileSync(photo(name)), { recognition: "faceapi_resnet" })[0].embedding;
  const [obama, obama2, obama3, biden] = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"].map(embed);
  const ranked = findSimilar(obama, [biden, obama2, obama3], "matchPerson", 10).map((s) => s.index).sort();
  assert.deepEqual(ranked, [1, 2]);
  assert.deepEqual(group([obama, biden, obama2, obama3]), { groups: [[0, 2, 3]], messyGroup: [1] });

  // ImageData-like pixels: a grey picture has no face.
  const width = 64, height = 48;
  const faces = engine.detect({ data: new Uint8ClampedArray(width * height * 4).fill(128), width, height });
  assert.deepEqual(faces, []);

  assert.throws(() => engine.detect(new Uint8Array(10)), { name: "FileTooSmall" });
  assert.throws(() => engine.detect(new TextEncoder().encode("not an image ".repeat(200))), { name: "UnsupportedFormat" });
  assert.throws(() => engine.detect(readFileSync(photo("obama.jpg")), { maxFaces: "many" }), { name: "InvalidArgument" });
  await assert.rejects(FaceEngine.create({ detector: m("face_detection_yunet_2023mar.onnx") }), { name: "InvalidArgument" });
  const required = { detector: m("face_detection_yunet_2023mar.onnx"), landmarks68: m("faceapi_landmark68.onnx"),
    sface: m("face_recognition_sface_2021dec.onnx"), faceapiRecognizer: m("faceapi_recognition.onnx") };
  await assert.rejects(FaceEngine.create({ ...required, ageGender: m("faceapi_age_gender.onnx") }), { name: "InvalidArgument" });
  const plain = await FaceEngine.create(required);
  assert.throws(() => plain.detect(readFileSync(photo("obama.jpg")), { attributes: true }), { name: "InvalidArgument" });
});
