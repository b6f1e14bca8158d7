// Browser entry point: the wasm and models are fetched by URL (or given as bytes).
import { makeApi } from "./engine.js";

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`fetching ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

const api = makeApi({
  loadWasm: async (wasm) => wasm ?? new URL("./dist/face_engine_bg.wasm", import.meta.url),
  readSource: (source) => fetchBytes(source),
});

export const { FaceEngine, verify, findSimilar, group, version } = api;
