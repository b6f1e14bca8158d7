import type { DetectOptions, Embedding, Face, Grouping, Models, Similar, Verification } from "./dist/face_engine.js";
export type {
  Attributes, DetectOptions, Embedding, Face, FaceLandmarks, Grouping, HeadPose, Measure, Models, Point, RecognitionModel,
  Rect,
  Similar, Verification,
} from "./dist/face_engine.js";

/** Bytes, or where to read them: a URL (browser, Node) or a file path (Node). */
export type Source = Uint8Array | ArrayBuffer | ArrayBufferView | string | URL;

/** Pixels as a canvas gives them (an ImageData fits). */
export interface Pixels { data: Uint8Array | Uint8ClampedArray; width: number; height: number; }

/** Where each model comes from: four required, two optional (together) for attributes. */
export type ModelSources = { [K in keyof Models]: Models[K] extends Uint8Array ? Source : Source | undefined };

/** An image for `detect`: encoded bytes (JPEG, PNG, GIF, BMP) or pixels. */
export type ImageInput = Uint8Array | ArrayBuffer | ArrayBufferView | Pixels;

export declare class FaceEngine {
  private constructor();
  /**
   * Loads the engine. Without `models`, the six models packaged with this package (attributes
   * included). Errors are `Error`s whose `name` says what went wrong.
   */
  static create(models?: ModelSources, options?: { wasm?: Source }): Promise<FaceEngine>;
  /**
   * The engine in a worker (a Web Worker in browsers, a worker thread in Node): the same methods,
   * as promises, so detection never blocks the calling thread. Call `close()` when done.
   */
  static createInWorker(models?: ModelSources, options?: { wasm?: Source }): Promise<WorkerFaceEngine>;
  /** Faces in an encoded image (JPEG, PNG, GIF, BMP) or in pixels, largest first. */
  detect(image: ImageInput, options?: DetectOptions): Face[];
}

/** The engine running in a worker (`FaceEngine.createInWorker()`). */
export interface WorkerFaceEngine {
  /** Faces in an encoded image or in pixels, largest first; the image is copied to the worker. */
  detect(image: ImageInput, options?: DetectOptions): Promise<Face[]>;
  verify(a: Embedding, b: Embedding): Promise<Verification>;
  findSimilar(query: Embedding, candidates: Embedding[], mode: "matchPerson" | "matchFace", max: number): Promise<Similar[]>;
  group(embeddings: Embedding[]): Promise<Grouping>;
  version(): Promise<string>;
  /** Stops the worker; pending calls fail with an `Error` named `WorkerFailed`. */
  close(): void;
}
export declare function verify(a: Embedding, b: Embedding): Verification;
export declare function findSimilar(query: Embedding, candidates: Embedding[], mode: "matchPerson" | "matchFace", max: number): Similar[];
export declare function group(embeddings: Embedding[]): Grouping;
export declare function version(): string;
