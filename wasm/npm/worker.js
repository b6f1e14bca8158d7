// The Web Worker behind `FaceEngine.createInWorker()` in browsers.
import { serveThisWorker } from "./index.js";

serveThisWorker({
  post: (message) => self.postMessage(message),
  listen: (onMessage) => {
    self.onmessage = (event) => onMessage(event.data);
  },
});
