// End-to-end test of face-server through the official npm client, @azure/cognitiveservices-face
// 5.0.0 on @azure/ms-rest-js (credentials from @azure/ms-rest-azure-js, as the package's README
// shows). Starts the real server on a free loopback port with a fresh SQLite data directory and
// drives a representative flow: detection, verification, a LargePersonGroup from creation through
// training and identification to deletion, find-similar, grouping and a wrong key.
//
// Environment (all required): FACE_SERVER (face-server binary), FACE_GUEST (guest .wasm),
// FACE_MODELS (model dir), FACE_GUEST_CACHE (compiled-guest cache dir), FACE_PHOTOS (dir with
// obama.jpg, obama2.jpg, obama3.jpg and biden.jpg from the face_recognition sdist).
//
// Run: npm ci && node --test client.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

// ms-rest-js sends every request through HTTPS_PROXY / ALL_PROXY / HTTP_PROXY when one is set,
// except to the hosts in NO_PROXY, which it reads once when it loads: keep the loopback server
// off any proxy, then load the client.
process.env.NO_PROXY = ['127.0.0.1', process.env.NO_PROXY || process.env.no_proxy].filter(Boolean).join(',');
const { FaceClient } = await import('@azure/cognitiveservices-face');
const { CognitiveServicesCredentials } = await import('@azure/ms-rest-azure-js');
const { RestError } = await import('@azure/ms-rest-js');

const API_KEY = 'npm-e2e-key';
const READY_TIMEOUT_MS = 180_000;
const STOP_GRACE_MS = 15_000;
const TRAIN_TIMEOUT_MS = 120_000;
const GROUP_ID = 'npm-e2e-lpg';
// Every test ends by this time, which leaves the after hook its time to stop the server: the
// whole file finishes within 5 minutes even when the server hangs.
const FILE_DEADLINE = Date.now() + 250_000;

// The 27 Face API landmarks, as the client names them.
const LANDMARKS = [
  'pupilLeft', 'pupilRight', 'noseTip', 'mouthLeft', 'mouthRight',
  'eyebrowLeftOuter', 'eyebrowLeftInner', 'eyeLeftOuter', 'eyeLeftTop', 'eyeLeftBottom',
  'eyeLeftInner', 'eyebrowRightInner', 'eyebrowRightOuter', 'eyeRightInner', 'eyeRightTop',
  'eyeRightBottom', 'eyeRightOuter', 'noseRootLeft', 'noseRootRight', 'noseLeftAlarTop',
  'noseRightAlarTop', 'noseLeftAlarOutTip', 'noseRightAlarOutTip', 'upperLipTop',
  'upperLipBottom', 'underLipTop', 'underLipBottom',
];

// ---------------------------------------------------------------------------------------------
// Environment

const ENV_VARS = {
  FACE_SERVER: 'path of the face-server binary',
  FACE_GUEST: 'path of the guest .wasm (face_wasm.wasm)',
  FACE_MODELS: 'model directory (models/ of the repository)',
  FACE_GUEST_CACHE: 'directory for the compiled-guest cache',
  FACE_PHOTOS: 'directory with obama.jpg, obama2.jpg, obama3.jpg and biden.jpg',
};
const missing = Object.keys(ENV_VARS).filter((name) => !process.env[name]);
if (missing.length > 0) {
  const lines = missing.map((name) => `  ${name}: ${ENV_VARS[name]}`).join('\n');
  throw new Error(`client.test.mjs needs these environment variables, which are not set:\n${lines}`);
}
const env = Object.fromEntries(Object.keys(ENV_VARS).map((name) => [name, process.env[name]]));
const photo = (name) => path.join(env.FACE_PHOTOS, name);

// ---------------------------------------------------------------------------------------------
// Server

let tmpDir;
let logPath;
let logFd;
let server; // ChildProcess
let serverExit = null; // { code, signal } once it exited
let stopping = false;
let endpoint;
let client;
let started = 0;
let passed = 0;
let failed = 0;

function logTail(maxBytes = 8192) {
  try {
    const text = fs.readFileSync(logPath, 'utf8');
    return text.length > maxBytes ? `...\n${text.slice(-maxBytes)}` : text;
  } catch (err) {
    return `(cannot read ${logPath}: ${err.message})`;
  }
}

function showLog(why) {
  if (!logPath) return;
  process.stderr.write(`\n--- face-server log tail (${why}; ${logPath}) ---\n${logTail()}\n--- end of log ---\n`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function waitExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

before(async () => {
  const port = await freePort();
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'face-npm-e2e-'));
  logPath = path.join(tmpDir, 'face-server.log');
  logFd = fs.openSync(logPath, 'a');
  const args = [
    'Eula=accept',
    'Billing=http://127.0.0.1:9/',
    `ApiKey=${API_KEY}`,
    `Server:Address=127.0.0.1:${port}`,
    'Storage:Scenario=Sqlite',
    `Storage:DataDirectory=${tmpDir}`,
    `Engine:Guest=${env.FACE_GUEST}`,
    `Engine:Models=${env.FACE_MODELS}`,
    `Engine:Cache=${env.FACE_GUEST_CACHE}`,
    'Engine:PoolSize=2',
  ];
  server = spawn(env.FACE_SERVER, args, { stdio: ['ignore', logFd, logFd] });
  const spawned = new Promise((resolve, reject) => {
    server.once('spawn', resolve);
    server.once('error', (err) => reject(new Error(`cannot start FACE_SERVER=${env.FACE_SERVER}: ${err.message}`)));
  });
  server.on('exit', (code, signal) => {
    serverExit = { code, signal };
    if (!stopping) showLog(`face-server exited early with code ${code}, signal ${signal}`);
  });
  await spawned;

  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no answer yet';
  for (;;) {
    if (serverExit) {
      throw new Error(`face-server exited before it was ready (code ${serverExit.code}, signal ${serverExit.signal}); log tail:\n${logTail()}`);
    }
    try {
      const res = await fetch(`${base}/ready`, { signal: AbortSignal.timeout(5_000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err.cause?.code ?? err.message;
    }
    if (Date.now() > deadline) {
      throw new Error(`face-server not ready after ${READY_TIMEOUT_MS / 1000} s (last: ${last}); log tail:\n${logTail()}`);
    }
    await sleep(250);
  }

  endpoint = base;
  client = newClient(API_KEY);
}, { timeout: READY_TIMEOUT_MS + 20_000 });

after(async () => {
  if (started > passed + failed) showLog(`${started - passed - failed} test(s) cancelled`);
  if (server?.pid !== undefined) { // undefined when the binary could not be spawned
    stopping = true;
    if (serverExit === null) {
      server.kill('SIGTERM');
      if (!(await waitExit(server, STOP_GRACE_MS))) {
        process.stderr.write(`face-server still running ${STOP_GRACE_MS / 1000} s after SIGTERM; sending SIGKILL\n`);
        server.kill('SIGKILL');
        await waitExit(server, 5_000);
      }
    }
  }
  if (logFd !== undefined) fs.closeSync(logFd);
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
}, { timeout: STOP_GRACE_MS + 15_000 });

/**
 * A test with its own time limit, cut short where the file's budget ends first. It counts as
 * passed only when its body finishes; a failure prints the server log tail.
 */
function serverTest(name, timeout, fn) {
  test(name, { timeout: timeout + 5_000 }, async (t) => {
    started += 1;
    assert.ok(client, 'face-server did not start (see the before hook)');
    const budget = Math.min(timeout, FILE_DEADLINE - Date.now());
    let timer;
    const expired = new Promise((_, reject) => {
      const why = budget < timeout ? "the file's time budget ran out" : `over its ${timeout / 1000} s limit`;
      timer = setTimeout(() => reject(new Error(`timed out: ${why}`)), Math.max(budget, 0));
    });
    try {
      await Promise.race([fn(t), expired]);
    } catch (err) {
      failed += 1;
      if (!serverExit) showLog(`test "${name}" failed`); // else shown when it exited
      throw err;
    } finally {
      clearTimeout(timer);
    }
    passed += 1;
  });
}

// ---------------------------------------------------------------------------------------------
// Helpers

/**
 * A FaceClient on the server. Without ms-rest-js's retry policies: a 5xx or a dropped connection
 * fails the test at once instead of after three retries with backoff (whose timers would also
 * keep this process alive after the server is stopped).
 */
function newClient(key) {
  return new FaceClient(new CognitiveServicesCredentials(key), endpoint, { noRetryPolicy: true });
}

const faceIds = new Map(); // photo name -> faceId (detected once, shared by the later tests)

/** The faceId of the single face in a photo; detected on first use. */
async function faceIdOf(name) {
  if (!faceIds.has(name)) {
    const faces = await client.face.detectWithStream(fs.readFileSync(photo(name)), {
      returnFaceId: true,
      recognitionModel: 'recognition_01',
    });
    assert.equal(faces.length, 1, `${name}: expected one face, got ${faces.length}`);
    assert.match(faces[0].faceId, /^[0-9a-f-]{36}$/i);
    faceIds.set(name, faces[0].faceId);
  }
  return faceIds.get(name);
}

/** Asserts that `promise` rejects with a RestError of this HTTP status (and Azure error code). */
async function rejectsWith(promise, statusCode, code) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof RestError, `expected a RestError, got ${err?.constructor?.name}: ${err?.stack ?? err}`);
    assert.equal(err.statusCode, statusCode, `status: ${err.statusCode}; body: ${err.response?.bodyAsText}`);
    if (code !== undefined) {
      assert.equal(err.code, code, `code: ${err.code}; body: ${err.response?.bodyAsText}`);
      assert.equal(err.body?.error?.code, code, 'the deserialized APIError body carries the code');
      assert.ok(err.body.error.message, 'the APIError has a message');
    }
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// Tests (node:test runs the top-level tests of a file one after another)

serverTest('detectWithStream: obama.jpg with landmarks, age and gender', 60_000, async () => {
  const faces = await client.face.detectWithStream(() => fs.createReadStream(photo('obama.jpg')), {
    returnFaceId: true,
    returnFaceLandmarks: true,
    returnFaceAttributes: ['age', 'gender'],
    recognitionModel: 'recognition_01',
    returnRecognitionModel: true,
    detectionModel: 'detection_01',
  });
  assert.equal(faces._response.status, 200);
  assert.equal(faces.length, 1, `expected one face, got ${faces.length}`);
  const [face] = faces;
  assert.match(face.faceId, /^[0-9a-f-]{36}$/i);
  faceIds.set('obama.jpg', face.faceId);
  assert.equal(face.recognitionModel, 'recognition_01');

  const rect = face.faceRectangle;
  for (const key of ['top', 'left', 'width', 'height']) {
    assert.equal(typeof rect[key], 'number', `faceRectangle.${key}`);
  }
  assert.ok(rect.width > 20 && rect.height > 20, `face too small: ${JSON.stringify(rect)}`);

  const landmarks = face.faceLandmarks;
  assert.ok(landmarks, 'faceLandmarks missing');
  assert.deepEqual(Object.keys(landmarks).sort(), [...LANDMARKS].sort(), 'the 27 landmarks');
  for (const name of LANDMARKS) {
    const { x, y } = landmarks[name];
    assert.ok(Number.isFinite(x) && Number.isFinite(y), `${name}: ${JSON.stringify(landmarks[name])}`);
  }
  // As in Azure's documented samples, pupilLeft is the pupil on the image's left.
  assert.ok(landmarks.pupilLeft.x < landmarks.pupilRight.x, 'pupilLeft is left of pupilRight in the image');
  assert.ok(landmarks.noseTip.y > landmarks.pupilLeft.y, 'the nose tip is below the pupils');

  const { age, gender } = face.faceAttributes;
  assert.ok(age >= 20 && age <= 90, `age ${age}`);
  assert.equal(gender, 'male');
});

serverTest('verifyFaceToFace: obama vs obama2 identical, obama vs biden not', 90_000, async () => {
  const [obama, obama2, biden] = [
    await faceIdOf('obama.jpg'),
    await faceIdOf('obama2.jpg'),
    await faceIdOf('biden.jpg'),
  ];
  const same = await client.face.verifyFaceToFace(obama, obama2);
  assert.equal(same.isIdentical, true, `obama vs obama2: ${JSON.stringify(same)}`);
  assert.ok(same.confidence >= 0.5 && same.confidence <= 1, `confidence ${same.confidence}`);
  const other = await client.face.verifyFaceToFace(obama, biden);
  assert.equal(other.isIdentical, false, `obama vs biden: ${JSON.stringify(other)}`);
  assert.ok(other.confidence >= 0 && other.confidence < 0.5, `confidence ${other.confidence}`);
});

serverTest('LargePersonGroup: create, add faces, train, identify, list, delete', 180_000, async () => {
  const created = await client.largePersonGroup.create(GROUP_ID, 'npm e2e', {
    userData: 'made by client.test.mjs',
    recognitionModel: 'recognition_01',
  });
  assert.equal(created._response.status, 200);

  const group = await client.largePersonGroup.get(GROUP_ID, { returnRecognitionModel: true });
  assert.equal(group.largePersonGroupId, GROUP_ID);
  assert.equal(group.name, 'npm e2e');
  assert.equal(group.userData, 'made by client.test.mjs');
  assert.equal(group.recognitionModel, 'recognition_01');

  const obama = await client.largePersonGroupPerson.create(GROUP_ID, { name: 'obama' });
  const biden = await client.largePersonGroupPerson.create(GROUP_ID, { name: 'biden', userData: 'vp' });
  assert.match(obama.personId, /^[0-9a-f-]{36}$/i);
  assert.match(biden.personId, /^[0-9a-f-]{36}$/i);
  assert.notEqual(obama.personId, biden.personId);

  const added = [];
  for (const [person, name] of [[obama, 'obama.jpg'], [obama, 'obama2.jpg'], [biden, 'biden.jpg']]) {
    const face = await client.largePersonGroupPerson.addFaceFromStream(
      GROUP_ID, person.personId, () => fs.createReadStream(photo(name)), { userData: name },
    );
    assert.match(face.persistedFaceId, /^[0-9a-f-]{36}$/i, `${name}: ${JSON.stringify(face)}`);
    added.push(face.persistedFaceId);
  }
  assert.equal(new Set(added).size, 3, 'distinct persistedFaceIds');

  const train = await client.largePersonGroup.train(GROUP_ID);
  assert.equal(train._response.status, 202);

  const deadline = Date.now() + TRAIN_TIMEOUT_MS;
  let status;
  for (;;) {
    status = await client.largePersonGroup.getTrainingStatus(GROUP_ID);
    assert.notEqual(status.status, 'failed', `training failed: ${status.message}`);
    if (status.status === 'succeeded') break;
    assert.ok(['nonstarted', 'running'].includes(status.status), `training status ${status.status}`);
    assert.ok(Date.now() < deadline, `training not done after ${TRAIN_TIMEOUT_MS / 1000} s: ${status.status}`);
    await sleep(500);
  }
  assert.ok(status.created instanceof Date && !Number.isNaN(status.created.getTime()), `created: ${status.created}`);

  const probe = await faceIdOf('obama3.jpg');
  const results = await client.face.identify([probe], { largePersonGroupId: GROUP_ID });
  assert.equal(results.length, 1);
  assert.equal(results[0].faceId, probe);
  assert.ok(results[0].candidates.length >= 1, `no candidates: ${JSON.stringify(results[0])}`);
  assert.equal(results[0].candidates[0].personId, obama.personId, 'obama3 is identified as obama');
  assert.ok(results[0].candidates[0].confidence > 0.5, `confidence ${results[0].candidates[0].confidence}`);

  const persons = await client.largePersonGroupPerson.list(GROUP_ID);
  const byId = new Map(persons.map((p) => [p.personId, p]));
  assert.equal(persons.length, 2);
  assert.equal(byId.get(obama.personId)?.name, 'obama');
  assert.equal(byId.get(biden.personId)?.name, 'biden');
  assert.equal(byId.get(biden.personId)?.userData, 'vp');
  assert.deepEqual([...byId.get(obama.personId).persistedFaceIds].sort(), [added[0], added[1]].sort());
  assert.deepEqual([...byId.get(biden.personId).persistedFaceIds], [added[2]]);

  const deleted = await client.largePersonGroup.deleteMethod(GROUP_ID);
  assert.equal(deleted._response.status, 200);
  await rejectsWith(client.largePersonGroup.get(GROUP_ID), 404, 'LargePersonGroupNotFound');
});

serverTest('findSimilar (matchPerson): obama finds obama2, not biden', 90_000, async () => {
  const [obama, obama2, biden] = [
    await faceIdOf('obama.jpg'),
    await faceIdOf('obama2.jpg'),
    await faceIdOf('biden.jpg'),
  ];
  const similar = await client.face.findSimilar(obama, { faceIds: [obama2, biden], mode: 'matchPerson' });
  assert.deepEqual(similar.map((s) => s.faceId), [obama2], JSON.stringify(similar));
  assert.ok(similar[0].confidence > 0.5 && similar[0].confidence <= 1, `confidence ${similar[0].confidence}`);
});

serverTest('group: the three obama faces together, biden in messyGroup', 90_000, async () => {
  const ids = {};
  for (const name of ['obama.jpg', 'obama2.jpg', 'obama3.jpg', 'biden.jpg']) ids[name] = await faceIdOf(name);
  const result = await client.face.group(Object.values(ids));
  const obamas = [ids['obama.jpg'], ids['obama2.jpg'], ids['obama3.jpg']].sort();
  assert.equal(result.groups.length, 1, JSON.stringify(result));
  assert.deepEqual([...result.groups[0]].sort(), obamas);
  assert.deepEqual([...result.messyGroup], [ids['biden.jpg']]);
});

serverTest('a wrong key is refused with 401', 30_000, async () => {
  const stranger = newClient('wrong-key');
  await rejectsWith(stranger.largePersonGroup.list(), 401);
  await rejectsWith(stranger.face.verifyFaceToFace(await faceIdOf('obama.jpg'), await faceIdOf('obama2.jpg')), 401);
});
