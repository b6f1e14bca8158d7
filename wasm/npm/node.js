// Node entry point: the wasm is read from the package; models from paths, file: or http(s) URLs, or bytes.
import { readFile } from "node:fs/promises";
import { makeApi } from "./engine.js";

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
    wasm === undefined ? await readFile(new URL("./dist/face_engine_bg.wasm", import.meta.url))
    : typeof wasm === "string" || wasm instanceof URL ? await readSource(wasm)
    : wasm,
  readSource,
});

export const { FaceEngine, verify, findSimilar, group, version } = api;
