// The worker thread behind `FaceEngine.createInWorker()` in Node.
import { parentPort } from "node:worker_threads";
import { serveThisWorker } from "./node.js";

serveThisWorker({
  post: (message) => parentPort.postMessage(message),
  listen: (onMessage) => parentPort.on("message", onMessage),
});
