// Browser (and bundler) entry point: the wasm and models are fetched by URL (or given as bytes).
// The packaged files are named in packaged.js with `new URL("./…", import.meta.url)` literals, so
// Vite, webpack and esbuild copy them into the build as assets.
import { makeApi, serveWorker } from "./engine.js";
import { packagedModels, packagedWasm } from "./packaged.js";

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`fetching ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

const api = makeApi({
  loadWasm: async (wasm) => wasm ?? packagedWasm(),
  readSource: (source) => fetchBytes(source),
  packagedModels,
  packagedWasm,
  // Relative URLs are resolved against the page here, not against the worker's script there.
  resolveSource: (source) => new URL(String(source), globalThis.location?.href).href,
  startWorker: () => {
    const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
    return {
      post: (message) => worker.postMessage(message),
      listen: (onMessage, onFailure) => {
        worker.onmessage = (event) => onMessage(event.data);
        worker.onerror = (event) => {
          event.preventDefault();
          onFailure(event.message || "the engine worker could not start");
        };
      },
      busy: () => {},
      idle: () => {},
      terminate: () => worker.terminate(),
    };
  },
});

export const { FaceEngine, verify, findSimilar, group, version } = api;

/** Answers a worker's messages with this module's API (used by worker.js). */
export const serveThisWorker = (port) => serveWorker(api, port);
