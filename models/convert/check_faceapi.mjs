// Node helper for check_faceapi.py: runs the real face-api.js (@vladmandic/face-api 1.7.15 on the
// pure-JS tfjs CPU backend) on raw input tensors and writes its outputs as JSON.
// Developer tool, not run in CI. Normally started by check_faceapi.py; see that file for setup.
//
//   node check_faceapi.mjs NODE_DIR MODEL_DIR REQUEST.json RESULT.json
//
// NODE_DIR   folder whose node_modules holds @vladmandic/face-api@1.7.15, @tensorflow/tfjs@4.22.0
//            and @tensorflow/tfjs-backend-wasm@4.22.0 (required by face-api.node-wasm.js, unused)
// MODEL_DIR  face-api.js model/ folder (manifests + .bin)
// REQUEST    [{"id": str, "net": "recognition"|"landmark68"|"age_gender"|"expression",
//              "size": int, "file": raw little-endian float32 [1,size,size,3] NHWC RGB 0..255}]
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const [nodeDir, modelDir, requestPath, resultPath] = process.argv.slice(2);
if (!resultPath) {
  console.error('usage: node check_faceapi.mjs NODE_DIR MODEL_DIR REQUEST.json RESULT.json');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(nodeDir), 'package.json'));
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const { tf } = faceapi;

await tf.setBackend('cpu');
await tf.ready();

function loadNet(net, modelName) {
  // same as tfjs io.loadWeights: decodeWeights() dequantizes per the manifest
  const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, `${modelName}-weights_manifest.json`), 'utf8'));
  const weightMap = {};
  for (const group of manifest) {
    const bufs = group.paths.map((p) => fs.readFileSync(path.join(modelDir, p)));
    const all = Buffer.concat(bufs);
    const ab = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
    Object.assign(weightMap, tf.io.decodeWeights(ab, group.weights));
  }
  net.loadFromWeightMap(weightMap);
  return net;
}

const nets = {
  recognition: loadNet(faceapi.nets.faceRecognitionNet, 'face_recognition_model'),
  landmark68: loadNet(faceapi.nets.faceLandmark68Net, 'face_landmark_68_model'),
  age_gender: loadNet(faceapi.nets.ageGenderNet, 'age_gender_model'),
  expression: loadNet(faceapi.nets.faceExpressionNet, 'face_expression_model'),
};

const request = JSON.parse(fs.readFileSync(requestPath, 'utf8'));
const results = {};
for (const item of request) {
  const buf = fs.readFileSync(item.file);
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const input = tf.tensor4d(data, [1, item.size, item.size, 3], 'float32');
  const out = {};
  if (item.net === 'recognition') {
    out.embedding = Array.from(await nets.recognition.computeFaceDescriptor(input));
  } else if (item.net === 'landmark68') {
    // forward() = raw fc output passed through postProcess (identity for a square input)
    const t = await nets.landmark68.forward(input);
    out.landmarks = Array.from(await t.data());
    t.dispose();
    const lm = await nets.landmark68.detectLandmarks(input);
    out.positions = lm.positions.flatMap((p) => [p.x, p.y]);
  } else if (item.net === 'age_gender') {
    const { age, gender } = await nets.age_gender.forward(input);
    out.age = Array.from(await age.data());
    out.gender = Array.from(await gender.data());
    age.dispose();
    gender.dispose();
    const pred = await nets.age_gender.predictAgeAndGender(input);
    out.predicted = { age: pred.age, gender: pred.gender, genderProbability: pred.genderProbability };
  } else if (item.net === 'expression') {
    const expr = await nets.expression.predictExpressions(input);
    out.labels = [...faceapi.FACE_EXPRESSION_LABELS];
    out.expressions = out.labels.map((label) => expr[label]);
  } else {
    throw new Error(`unknown net ${item.net}`);
  }
  input.dispose();
  results[item.id] = out;
}
fs.writeFileSync(resultPath, JSON.stringify({ version: faceapi.version, tfjs: tf.version_core, backend: tf.getBackend(), results }));
