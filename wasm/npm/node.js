// Node entry point: the wasm and models are read from the package; other models from paths,
// file: or http(s) URLs, or bytes.
import { readFile } from "node:fs/promises";
import { Worker } from "node:worker_threads";
import { makeApi, serveWorker } from "./engine.js";
import { packagedModels, packagedWasm } from "./packaged.js";

async function readSource(source) {
  const text = String(source);
  if (/^https?:/.test(text)) {
    const response = await fetch(text);
    if (!response.ok) throw new Error(`fetching ${text}: HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  }
  return new Uint8Array(await readFile(text.startsWith("file:") ? new URL(text) : text));
}

const api = makeApi({
  // Node's fetch cannot read files: a path or file: URL for the wasm is read here.
  loadWasm: async (wasm) =>
    wasm === undefined ? await readFile(packagedWasm())
    : typeof wasm === "string" || wasm instanceof URL ? await readSource(wasm)
    : wasm,
  readSource,
  packagedModels,
  packagedWasm,
  // Paths stay paths (the worker thread shares the working directory); URLs become strings.
  resolveSource: (source) => String(source),
  startWorker: () => {
    const worker = new Worker(new URL("./node-worker.js", import.meta.url));
    // An idle worker does not keep the process alive; one with calls pending does.
    worker.unref();
    return {
      post: (message) => worker.postMessage(message),
      listen: (onMessage, onFailure) => {
        worker.on("message", onMessage);
        worker.on("error", (error) => onFailure(error?.message ?? String(error)));
        worker.on("exit", (code) => onFailure(`the engine worker exited (code ${code})`));
      },
      busy: () => worker.ref(),
      idle: () => worker.unref(),
      terminate: () => worker.terminate(),
    };
  },
});

export const { FaceEngine, verify, findSimilar, group, version } = api;

/** Answers a worker thread's messages with this module's API (used by node-worker.js). */
export const serveThisWorker = (port) => serveWorker(api, port);
