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

export declare class FaceEngine {
  private constructor();
  /** Loads the engine with its models (four required, two optional for attributes). Errors are `Error`s whose `name` says what went wrong. */
  static create(models: { [K in keyof Models]: Models[K] extends Uint8Array ? Source : Source | undefined }, options?: { wasm?: Source }): Promise<FaceEngine>;
  /** Faces in an encoded image (JPEG, PNG, GIF, BMP) or in pixels, largest first. */
  detect(image: Uint8Array | ArrayBuffer | ArrayBufferView | Pixels, options?: DetectOptions): Face[];
}
export declare function verify(a: Embedding, b: Embedding): Verification;
export declare function findSimilar(query: Embedding, candidates: Embedding[], mode: "matchPerson" | "matchFace", max: number): Similar[];
export declare function group(embeddings: Embedding[]): Grouping;
export declare function version(): string;
