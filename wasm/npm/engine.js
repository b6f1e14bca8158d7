// Shared by the browser and Node entry points: model loading, the FaceEngine wrapper over the
// wasm-bindgen API, and the worker-backed engine. `host` supplies how to load the wasm, how to
// read a model source, where the packaged models and wasm are, and how to start a worker.
import init, { FaceEngine as RawEngine, verify, findSimilar, group, version } from "./dist/face_engine.js";

const MODEL_KEYS = ["detector", "landmarks68", "sface", "faceapiRecognizer"];
const ATTRIBUTE_KEYS = ["ageGender", "expression"];

function namedError(name, message) {
  const error = new Error(message);
  error.name = name;
  return error;
}

const asBytes = (v) =>
  v instanceof Uint8Array ? v
  : v instanceof ArrayBuffer ? new Uint8Array(v)
  : ArrayBuffer.isView(v) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength)
  : null;

export function makeApi(host) {
  let ready;
  // A failed load is not remembered: the next create() tries again.
  const load = (wasm) =>
    (ready ??= host
      .loadWasm(wasm)
      .then((module_or_path) => init({ module_or_path }))
      .catch((error) => {
        ready = undefined;
        throw error;
      }));

  class FaceEngine {
    /**
     * Loads the engine. Without `models`, the six models packaged with this package (all
     * attributes available). Otherwise `models` maps detector, landmarks68, sface and
     * faceapiRecognizer (and optionally ageGender and expression) to bytes (Uint8Array /
     * ArrayBuffer) or to where to read them (a URL, or a path in Node).
     */
    static async create(models, options = {}) {
      await load(options.wasm);
      models ??= host.packagedModels();
      if (typeof models !== "object") {
        throw namedError("InvalidArgument", `models must be an object with ${MODEL_KEYS.join(", ")}, or left out for the packaged ones`);
      }
      const bytes = {};
      for (const key of MODEL_KEYS) {
        const source = models[key];
        if (source === undefined || source === null) {
          throw namedError("InvalidArgument", `models.${key} is missing: give its bytes or where to read it`);
        }
        bytes[key] = asBytes(source) ?? (await host.readSource(source));
      }
      // The attribute nets are optional, and come together.
      for (const key of ATTRIBUTE_KEYS) {
        const source = models[key];
        if (source !== undefined && source !== null) bytes[key] = asBytes(source) ?? (await host.readSource(source));
      }
      return new FaceEngine(RawEngine.fromModels(bytes));
    }

    /**
     * The same engine in a worker (a Web Worker in browsers, a worker thread in Node), so that
     * detection never blocks the calling thread: every method returns a promise. `close()` stops
     * the worker.
     */
    static async createInWorker(models, options = {}) {
      const resolved = {};
      for (const [key, source] of Object.entries(models ?? host.packagedModels())) {
        resolved[key] = source === undefined || source === null || asBytes(source) ? source : host.resolveSource(source);
      }
      const wasm = options.wasm === undefined || asBytes(options.wasm) ? options.wasm : host.resolveSource(options.wasm);
      let port;
      try {
        port = host.startWorker();
      } catch (error) {
        // A page may not start workers (a file:// page, a Content-Security-Policy): say so by the
        // same name as a worker that fails later, so callers can fall back to create().
        throw namedError("WorkerFailed", `the worker could not start: ${error?.message ?? error}`);
      }
      const engine = new WorkerEngine(port);
      try {
        await engine.call("create", [resolved, { wasm: wasm ?? host.resolveSource(host.packagedWasm()) }]);
      } catch (error) {
        engine.close();
        throw error;
      }
      return engine;
    }

    constructor(raw) {
      this.raw = raw;
    }

    /** Faces in an encoded image (bytes) or in pixels (an ImageData-like {data, width, height}). */
    detect(image, options) {
      if (image && typeof image.width === "number" && typeof image.height === "number" && image.data) {
        const data = image.data instanceof Uint8Array ? image.data : new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.byteLength);
        return this.raw.detectPixels(data, image.width, image.height, options);
      }
      const bytes = asBytes(image);
      if (!bytes) throw namedError("InvalidArgument", "detect takes image bytes (Uint8Array, ArrayBuffer, a typed-array view) or ImageData");
      return this.raw.detect(bytes, options);
    }
  }

  return { FaceEngine, verify, findSimilar, group, version, load };
}

/**
 * The caller's side of a worker: each call is a message `{ id, op, args }`, answered by
 * `{ id, result }` or `{ id, error: { name, message } }`. `port` (from the entry point) posts
 * messages, delivers answers and failures, holds the thread open while calls are pending (Node),
 * and terminates the worker.
 */
class WorkerEngine {
  constructor(port) {
    this.port = port;
    this.pending = new Map();
    this.next = 1;
    this.failed = null;
    port.listen(
      ({ id, result, error }) => {
        const call = this.pending.get(id);
        if (!call) return;
        this.pending.delete(id);
        if (this.pending.size === 0) port.idle();
        if (error) call.reject(namedError(error.name, error.message));
        else call.resolve(result);
      },
      (message) => this.fail(message),
    );
  }

  fail(message) {
    if (this.failed) return;
    this.failed = message;
    for (const call of this.pending.values()) call.reject(namedError("WorkerFailed", message));
    this.pending.clear();
    this.port.idle();
  }

  call(op, args) {
    if (this.failed) return Promise.reject(namedError("WorkerFailed", this.failed));
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.port.busy();
      try {
        this.port.post({ id, op, args });
      } catch (error) {
        // Arguments the structured clone refuses (a function in the options, say): this call
        // fails, the worker stays usable, and nothing keeps the thread (Node) alive for it.
        this.pending.delete(id);
        if (this.pending.size === 0) this.port.idle();
        reject(namedError("InvalidArgument", `the arguments cannot be sent to the worker: ${error?.message ?? error}`));
      }
    });
  }

  /** Faces in an encoded image (bytes) or in pixels, as `FaceEngine.detect`; the image is copied to the worker. */
  detect(image, options) {
    if (!(image && typeof image.width === "number" && image.data) && !asBytes(image)) {
      return Promise.reject(namedError("InvalidArgument", "detect takes image bytes (Uint8Array, ArrayBuffer, a typed-array view) or ImageData"));
    }
    return this.call("detect", [image, options]);
  }

  verify(a, b) {
    return this.call("verify", [a, b]);
  }

  findSimilar(query, candidates, mode, max) {
    return this.call("findSimilar", [query, candidates, mode, max]);
  }

  group(embeddings) {
    return this.call("group", [embeddings]);
  }

  version() {
    return this.call("version", []);
  }

  /** Stops the worker; pending calls fail with `WorkerFailed`. */
  close() {
    if (!this.failed) this.fail("the engine was closed");
    this.port.terminate();
  }
}

/**
 * The worker's side: answers the messages `port` delivers with `api` (the entry point's exports).
 * Results and errors go back as plain values.
 */
export function serveWorker(api, port) {
  let engine = null;
  const ops = {
    create: async (models, options) => {
      engine = await api.FaceEngine.create(models, options);
      return true;
    },
    detect: (image, options) => {
      if (!engine) throw namedError("InvalidArgument", "the worker's engine is not created yet");
      return engine.detect(image, options);
    },
    verify: (a, b) => api.verify(a, b),
    findSimilar: (query, candidates, mode, max) => api.findSimilar(query, candidates, mode, max),
    group: (embeddings) => api.group(embeddings),
    version: () => api.version(),
  };
  port.listen(async ({ id, op, args }) => {
    try {
      const handler = ops[op];
      if (!handler) throw namedError("InvalidArgument", `unknown worker operation ${op}`);
      port.post({ id, result: await handler(...args) });
    } catch (e) {
      port.post({ id, error: { name: e?.name ?? "Error", message: e?.message ?? String(e) } });
    }
  });
}
