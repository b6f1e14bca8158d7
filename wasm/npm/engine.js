// Shared by the browser and Node entry points: model loading and the FaceEngine wrapper over the
// wasm-bindgen API. `host` supplies how to load the wasm and how to read a model source.
import init, { FaceEngine as RawEngine, verify, findSimilar, group, version } from "./dist/face_engine.js";

const MODEL_KEYS = ["detector", "landmarks68", "sface", "faceapiRecognizer"];
const ATTRIBUTE_KEYS = ["ageGender", "expression"];

function namedError(name, message) {
  const error = new Error(message);
  error.name = name;
  return error;
}

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
  const asBytes = (v) =>
    v instanceof Uint8Array ? v
    : v instanceof ArrayBuffer ? new Uint8Array(v)
    : ArrayBuffer.isView(v) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength)
    : null;

  class FaceEngine {
    /**
     * Loads the engine. `models` maps detector, landmarks68, sface and faceapiRecognizer to
     * bytes (Uint8Array / ArrayBuffer) or to where to read them (a URL, or a path in Node).
     */
    static async create(models, options = {}) {
      await load(options.wasm);
      if (!models || typeof models !== "object") {
        throw namedError("InvalidArgument", `models must be an object with ${MODEL_KEYS.join(", ")}`);
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
