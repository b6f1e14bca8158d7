// The in-browser demo of face-engine-wasm (the npm package in ./pkg): detection, the 27 Face API
// landmarks, attributes, verification and grouping, all computed in this tab.
//
// The engine runs in the package's own worker (`FaceEngine.createInWorker`), so detection never
// freezes the page; where a module worker cannot start, it runs in the page instead. The page
// downloads the wasm and the models itself, to show progress, and hands the bytes over.
// Everything is loaded by relative URL (./pkg, and the models packaged in it, ./pkg/models), so
// any static file server works, and face-server serves it at /demo/.

import { FaceEngine, verify, group, version } from "./pkg/index.js";

/** The six models, by the key FaceEngine.create knows them by. */
const MODELS = {
  detector: "face_detection_yunet_2023mar.onnx",
  landmarks68: "faceapi_landmark68.onnx",
  // The registry's int8 form, which the engine folds into the f32 weights as it loads it.
  sface: "face_recognition_sface_2021dec_int8bq.onnx",
  faceapiRecognizer: "faceapi_recognition.onnx",
  ageGender: "faceapi_age_gender.onnx",
  expression: "faceapi_expression.onnx",
};
const WASM_URL = new URL("./pkg/dist/face_engine_bg.wasm", import.meta.url);
/** Photos: everything the engine can tell. */
const PHOTO_OPTIONS = { landmarks: true, recognition: "sface_2021dec", attributes: true };
/** Camera frames: no embedding (nothing to compare a passing frame with), so it keeps up. */
const LIVE_OPTIONS = { landmarks: true, recognition: null, attributes: true };

// ---------------------------------------------------------------------------------------------
// The engine.

function namedError(name, message) {
  const error = new Error(message);
  error.name = name;
  return error;
}

/** Downloads all `items` ({ key, url }) at once, reporting the bytes received. */
async function download(items, onProgress) {
  const started = performance.now();
  const responses = await Promise.all(items.map(async (item) => {
    let response;
    try {
      response = await fetch(item.url);
    } catch (e) {
      throw namedError("Download", `${item.url} could not be fetched (${e.message})`);
    }
    if (!response.ok) throw namedError("Download", `${item.url}: HTTP ${response.status}`);
    return { ...item, response, size: Number(response.headers.get("content-length")) || 0 };
  }));
  // The sizes the server announced; a file without one counts what has arrived of it so far.
  const announced = responses.reduce((sum, r) => sum + r.size, 0);
  let unannounced = 0;
  let loaded = 0;
  let lastReport = 0;
  const report = (force) => {
    const now = performance.now();
    if (force || now - lastReport > 80) {
      lastReport = now;
      onProgress({ loaded, total: announced ? announced + unannounced : 0 });
    }
  };
  const results = await Promise.all(responses.map(async (r) => {
    const chunks = [];
    let size = 0;
    if (r.response.body && r.response.body.getReader) {
      const reader = r.response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        size += value.length;
        loaded += value.length;
        if (!r.size) unannounced += value.length;
        report(false);
      }
    } else {
      const whole = new Uint8Array(await r.response.arrayBuffer());
      chunks.push(whole);
      size = whole.length;
      loaded += size;
      if (!r.size) unannounced += size;
    }
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, at);
      at += chunk.length;
    }
    return { key: r.key, bytes, ms: performance.now() - started };
  }));
  report(true);
  return { results, bytes: loaded, ms: performance.now() - started };
}

/**
 * The engine behind the page's requests ({ type, ... } in, a result with its `ms` out): the
 * package's worker-backed engine, or the engine in the page where a module worker cannot start.
 * Errors keep the engine's `name`.
 */
class EngineClient {
  constructor() {
    this.engine = null;
    this.mode = typeof Worker === "function" ? "in a Web Worker" : "in the page";
  }

  async load(base, onProgress) {
    const items = [{ key: "wasm", url: WASM_URL.href }];
    for (const [key, file] of Object.entries(MODELS)) items.push({ key, url: new URL(`./pkg/models/${file}`, base).href });
    const fetched = await download(items, (p) => onProgress({ stage: "download", ...p }));
    onProgress({ stage: "init" });
    const { wasm, ...models } = Object.fromEntries(fetched.results.map((r) => [r.key, r.bytes]));
    const t0 = performance.now();
    if (typeof Worker === "function") {
      try {
        this.engine = await FaceEngine.createInWorker(models, { wasm });
      } catch (e) {
        // A worker that cannot start (an old browser, say) gives way to the engine in the page.
        if (e.name !== "WorkerFailed") throw e;
      }
    }
    if (!this.engine) {
      this.mode = "in the page";
      const local = await FaceEngine.create(models, { wasm });
      this.engine = {
        detect: async (image, options) => local.detect(image, options),
        verify: async (a, b) => verify(a, b),
        group: async (embeddings) => group(embeddings),
        version: async () => version(),
      };
    }
    const initMs = performance.now() - t0;
    return { version: await this.engine.version(), downloadMs: fetched.ms, downloadBytes: fetched.bytes, initMs };
  }

  async call(request, { onProgress } = {}) {
    if (request.type === "load") return this.load(request.base, onProgress ?? (() => {}));
    if (!this.engine) throw namedError("NotReady", "the engine has not finished loading");
    const t0 = performance.now();
    switch (request.type) {
      case "detect": {
        const faces = await this.engine.detect(request.image, request.options);
        return { faces, ms: performance.now() - t0 };
      }
      case "verify": {
        const result = await this.engine.verify(request.a, request.b);
        return { ...result, ms: performance.now() - t0 };
      }
      case "group": {
        const result = await this.engine.group(request.embeddings);
        return { ...result, ms: performance.now() - t0 };
      }
      default:
        throw namedError("InvalidArgument", `unknown request ${request.type}`);
    }
  }
}

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "for") node.setAttribute(key, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const ms = (v) => (v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(1)} ms`);
const pct = (v) => `${Math.round(v * 100)}%`;
const mb = (bytes) => `${(bytes / 1048576).toFixed(1)} MB`;
const PALETTE = ["#ff3b6b", "#1fb6ff", "#ffb000", "#2bd576", "#b26bff", "#ff7a1a", "#00d1c1", "#f05bd8"];
const colorOf = (i) => PALETTE[i % PALETTE.length];

/** A human sentence for each engine error, by its `name`. */
function errorSentence(name, file) {
  switch (name) {
    case "FileTooSmall": return `${file} is too small to be a photo (the engine needs at least 1 KB).`;
    case "FileTooLarge": return `${file} is too large: photos can be at most 6 MB.`;
    case "UnsupportedFormat": return `${file} is not an image the engine can read: use JPEG, PNG, GIF or BMP.`;
    case "CorruptImage": return `${file} could not be decoded: the image data is damaged or incomplete.`;
    case "ImageTooSmall": return `${file} is too small: each side must be at least 36 pixels.`;
    case "ImageTooLarge": return `${file} is too large: each side must be at most 4096 pixels.`;
    case "DecompressionBomb": return `${file} would need too much memory to decode.`;
    case "NoFace": return `No face found in ${file}.`;
    case "Model": return `The engine's models failed on ${file}.`;
    case "InvalidArgument": return `${file} could not be processed.`;
    case "WorkerFailed": return `The engine stopped while working on ${file}: reload the page to start it again.`;
    case "NotReadableError": return `${file} could not be read from the disk.`;
    default: return `${file} could not be processed.`;
  }
}

function startPage() {
  const engine = new EngineClient();
  const state = {
    ready: false,
    photoSeq: 0,
    /** id -> { id, name, card, bitmap, faces: [{ key, index, face }] } */
    photos: new Map(),
    /** key -> { key, photo, index, face } */
    faces: new Map(),
    names: new Set(),
    camera: null,
    work: Promise.resolve(),
  };

  // --- messages ------------------------------------------------------------------------------
  const messages = $("messages");
  function say(kind, text, detail) {
    const item = el("li", { class: `message ${kind}`, "data-kind": kind, "data-testid": "message" },
      el("span", { class: "message-kind", text: kind === "error" ? "Error" : kind === "warn" ? "Note" : "Info" }),
      el("span", { class: "message-text", text }),
      detail ? el("span", { class: "message-detail", text: detail }) : null);
    messages.prepend(item);
    while (messages.children.length > 8) messages.lastElementChild.remove();
    return item;
  }

  // --- loading --------------------------------------------------------------------------------
  const progress = $("load-progress");
  const loadStatus = $("load-status");
  $("engine-mode").textContent = `(running ${engine.mode})`;
  const loadEngine = (onProgress) => engine.call({ type: "load", base: document.baseURI }, { onProgress });
  const showProgress = (p) => {
    if (p.stage === "download") {
      if (p.total > 0) {
        progress.max = p.total;
        progress.value = p.loaded;
        loadStatus.textContent = `Downloading the engine and 6 models: ${mb(p.loaded)} of ${mb(p.total)}`;
      } else {
        progress.removeAttribute("value");
        loadStatus.textContent = `Downloading the engine and 6 models: ${mb(p.loaded)}`;
      }
    } else if (p.stage === "init") {
      progress.removeAttribute("value");
      loadStatus.textContent = "Preparing the models (compiling the engine, optimising the networks)…";
    }
  };
  loadEngine(showProgress)
    .then((info) => {
      state.ready = true;
      $("engine-version").textContent = info.version;
      $("footer-version").textContent = info.version;
      $("engine-mode").textContent = `(running ${engine.mode})`;
      const timings = $("load-timings");
      timings.replaceChildren(
        el("div", {}, el("dt", { text: "Download" }), el("dd", { text: `${mb(info.downloadBytes)} in ${ms(info.downloadMs)}` })),
        el("div", {}, el("dt", { text: "Engine start" }), el("dd", { text: ms(info.initMs) })));
      $("loading").hidden = true;
      for (const id of ["file-input", "camera-start", "clear-all"]) $(id).disabled = false;
      document.body.dataset.ready = "true";
      say("info", `The engine is ready (${info.version}): add photos or use the camera.`);
    })
    .catch((e) => {
      document.body.dataset.ready = "error";
      progress.value = 0;
      loadStatus.textContent = "The engine could not be loaded.";
      say("error", `The engine could not be loaded (${e.name}). Reload the page to try again.`, e.message);
    });

  // --- photos ---------------------------------------------------------------------------------
  function uniqueName(name) {
    let candidate = name || "photo";
    for (let n = 2; state.names.has(candidate); n++) candidate = `${name} (${n})`;
    state.names.add(candidate);
    return candidate;
  }

  function addFiles(files) {
    const list = [...files];
    if (!list.length) return;
    if (!state.ready) {
      say("warn", "The engine is still loading: add the photos again once it is ready.");
      return;
    }
    // One after the other, so the stage times are those of one photo.
    for (const file of list) state.work = state.work.then(() => processFile(file));
  }

  async function processFile(file) {
    const id = `p${++state.photoSeq}`;
    const name = uniqueName(file.name);
    const card = el("article", { class: "card working", "data-testid": "photo", "data-file": name, "data-state": "working", "aria-busy": "true", "aria-labelledby": `${id}-title` });
    const title = el("h3", { id: `${id}-title`, class: "card-title" }, el("span", { class: "file-name", text: name }), el("span", { class: "badge", text: "detecting…" }));
    const remove = el("button", { type: "button", class: "button subtle small", text: "Remove", "aria-label": `Remove ${name}`, onclick: () => removePhoto(id) });
    card.append(el("div", { class: "card-head" }, title, remove));
    $("photos").prepend(card);
    $("photos-empty").hidden = true;
    const photo = { id, name, card, bitmap: null, faces: [] };
    state.photos.set(id, photo);

    const times = {};
    const t0 = performance.now();
    try {
      const buffer = await file.arrayBuffer();
      times.read = performance.now() - t0;
      // The browser decodes the photo for display while the engine decodes it for detection.
      const tDisplay = performance.now();
      const display = createImageBitmap(file).then(
        (bitmap) => ({ bitmap, ms: performance.now() - tDisplay }),
        () => ({ bitmap: null, ms: performance.now() - tDisplay }));
      const answer = await engine.call({ type: "detect", image: new Uint8Array(buffer), options: PHOTO_OPTIONS });
      times.detect = answer.ms;
      const shown = await display;
      times.display = shown.ms;
      if (!state.photos.has(id)) return; // removed meanwhile
      photo.bitmap = shown.bitmap;
      const tDraw = performance.now();
      const faces = answer.faces;
      const content = el("div", { class: "card-body" });
      if (shown.bitmap) {
        const canvas = el("canvas", { class: "photo-canvas", role: "img", "aria-label": `${name} with ${faces.length} ${faces.length === 1 ? "face" : "faces"} marked` });
        canvas.width = shown.bitmap.width;
        canvas.height = shown.bitmap.height;
        const ctx = canvas.getContext("2d");
        ctx.drawImage(shown.bitmap, 0, 0);
        drawFaces(ctx, faces, canvas.width, canvas.height);
        content.append(el("div", { class: "canvas-wrap" }, canvas));
      } else {
        content.append(el("p", { class: "hint", text: "The browser cannot display this image, but the engine read it: its faces are listed below." }));
      }
      times.draw = performance.now() - tDraw;

      photo.faces = faces.map((face, index) => {
        const entry = { key: `${id}-f${index + 1}`, photo, index, face };
        state.faces.set(entry.key, entry);
        return entry;
      });
      if (faces.length) content.append(faceTable(photo));
      else content.append(el("p", { class: "no-face", text: "No face found in this photo." }));
      times.total = performance.now() - t0;
      content.append(timingList([
        ["Read file", times.read],
        ["Browser decode (display)", times.display],
        ["Engine detect (decode, detect, landmarks, embedding, attributes; with the trip to the worker)", times.detect],
        ["Draw", times.draw],
        ["Photo total", times.total],
      ]));
      card.append(content);
      title.querySelector(".badge").textContent = faces.length === 1 ? "1 face" : `${faces.length} faces`;
      card.dataset.faceCount = String(faces.length);
      card.dataset.state = faces.length ? "done" : "no-face";
      if (!faces.length) say("warn", `No face found in ${name}.`);
      refreshFaceLists();
    } catch (e) {
      const sentence = errorSentence(e.name, name);
      card.dataset.state = "error";
      card.dataset.error = e.name;
      card.dataset.faceCount = "0";
      title.querySelector(".badge").textContent = "not read";
      card.classList.add("failed");
      card.append(el("div", { class: "card-body" }, el("p", { class: "error-text", text: sentence }), el("p", { class: "hint", text: `${e.name}: ${e.message}` })));
      say("error", sentence, `${e.name}: ${e.message}`);
    } finally {
      card.classList.remove("working");
      card.removeAttribute("aria-busy");
    }
  }

  function removePhoto(id) {
    const photo = state.photos.get(id);
    if (!photo) return;
    for (const entry of photo.faces) state.faces.delete(entry.key);
    photo.bitmap?.close?.();
    photo.card.remove();
    state.photos.delete(id);
    state.names.delete(photo.name);
    $("photos-empty").hidden = state.photos.size > 0;
    refreshFaceLists();
    $("photos-title").focus();
  }

  $("clear-all").addEventListener("click", () => {
    for (const id of [...state.photos.keys()]) removePhoto(id);
    messages.replaceChildren();
    $("group-result").replaceChildren();
    delete $("group-result").dataset.groups;
  });

  // --- drawing --------------------------------------------------------------------------------
  function drawFaces(ctx, faces, width, height) {
    // Sizes in displayed pixels: photos are shown about 500 pixels high.
    const s = Math.max(1, Math.max(width, height) / 500);
    faces.forEach((face, i) => {
      const color = colorOf(i);
      const r = face.rectangle;
      ctx.lineWidth = 2.5 * s;
      ctx.strokeStyle = "rgba(0,0,0,0.55)";
      ctx.strokeRect(r.left, r.top, r.width, r.height);
      ctx.lineWidth = 1.5 * s;
      ctx.strokeStyle = color;
      ctx.strokeRect(r.left, r.top, r.width, r.height);
      if (face.landmarks) {
        ctx.fillStyle = color;
        for (const p of Object.values(face.landmarks)) {
          ctx.beginPath();
          ctx.arc(p.x, p.y, 1.8 * s, 0, Math.PI * 2);
          ctx.fill();
          ctx.lineWidth = 0.6 * s;
          ctx.strokeStyle = "rgba(0,0,0,0.6)";
          ctx.stroke();
        }
      }
      const a = face.attributes;
      const label = a ? `${i + 1} · ${Math.round(a.age)} · ${a.gender === "female" ? "F" : "M"}` : `${i + 1}`;
      ctx.font = `600 ${Math.round(13 * s)}px system-ui, sans-serif`;
      const pad = 3 * s;
      const w = ctx.measureText(label).width + pad * 2;
      const h = 17 * s;
      const x = Math.min(Math.max(0, r.left - ctx.lineWidth), width - w);
      const y = r.top - h >= 0 ? r.top - h : Math.min(r.top + r.height, height - h);
      ctx.fillStyle = color;
      ctx.fillRect(x, y, w, h);
      ctx.fillStyle = "#000";
      ctx.textBaseline = "middle";
      ctx.fillText(label, x + pad, y + h / 2 + 0.5 * s);
    });
  }

  /** A square crop around a face, for the compare and group views. */
  function thumbnail(entry, size = 72) {
    const canvas = el("canvas", { class: "thumb", width: size, height: size, role: "img", "aria-label": faceLabel(entry) });
    const bitmap = entry.photo.bitmap;
    const ctx = canvas.getContext("2d");
    if (bitmap) {
      const r = entry.face.rectangle;
      const side = Math.max(r.width, r.height) * 1.3;
      const cx = r.left + r.width / 2;
      const cy = r.top + r.height / 2;
      ctx.drawImage(bitmap, cx - side / 2, cy - side / 2, side, side, 0, 0, size, size);
    } else {
      ctx.fillStyle = "#888";
      ctx.fillRect(0, 0, size, size);
    }
    return canvas;
  }

  const faceLabel = (entry) => `${entry.photo.name} · face ${entry.index + 1}`;

  // --- the table of faces ---------------------------------------------------------------------
  function faceTable(photo) {
    const columns = ["Face", "Rectangle", "Score", "Age", "Gender", "Smile", "Emotion", "Head pose", "Appearance", "Blur", "Exposure", "Noise", "Compare"];
    const table = el("table", { class: "faces" },
      el("caption", { class: "visually-hidden", text: `Faces in ${photo.name}` }),
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", text: c })))));
    const body = el("tbody");
    for (const entry of photo.faces) {
      const { face, index } = entry;
      const a = face.attributes;
      const r = face.rectangle;
      const measure = (m) => (m ? `${m.level} (${m.value.toFixed(2)})` : "—");
      const cells = [
        el("th", { scope: "row", "data-label": "Face" }, el("span", {}, el("span", { class: "swatch", style: `background:${colorOf(index)}`, "aria-hidden": "true" }), ` ${index + 1}`)),
        el("td", { "data-label": "Rectangle", text: `${r.left}, ${r.top} · ${r.width}×${r.height}` }),
        el("td", { "data-label": "Score", text: face.detection ? face.detection.score.toFixed(2) : "—" }),
        el("td", { "data-label": "Age", text: a ? a.age.toFixed(0) : "—" }),
        el("td", { "data-label": "Gender", text: a ? `${a.gender} (${pct(a.genderConfidence)})` : "—" }),
        el("td", { "data-label": "Smile", text: a ? pct(a.smile) : "—" }),
        el("td", { "data-label": "Emotion" }, a ? emotionText(a.emotion) : "—"),
        el("td", { "data-label": "Head pose", text: a?.headPose ? `roll ${a.headPose.roll.toFixed(0)}° · yaw ${a.headPose.yaw.toFixed(0)}° · pitch ${a.headPose.pitch.toFixed(0)}°` : "—" }),
        el("td", { "data-label": "Appearance", text: a ? appearanceText(a) : "—" }),
        el("td", { "data-label": "Blur", text: measure(a?.blur) }),
        el("td", { "data-label": "Exposure", text: measure(a?.exposure) }),
        el("td", { "data-label": "Noise", text: measure(a?.noise) }),
        el("td", { "data-label": "Compare", class: "compare-cell" },
          el("button", { type: "button", class: "button small", text: "A", "aria-label": `Use ${faceLabel(entry)} as face A`, disabled: !face.embedding, onclick: () => pick("a", entry.key) }),
          el("button", { type: "button", class: "button small", text: "B", "aria-label": `Use ${faceLabel(entry)} as face B`, disabled: !face.embedding, onclick: () => pick("b", entry.key) })),
      ];
      const attrs = a ? JSON.stringify({
        age: a.age, gender: a.gender, smile: a.smile, headPose: a.headPose ?? null,
        blur: a.blur.value, exposure: a.exposure.value, noise: a.noise.value,
        emotion: a.emotion, glasses: a.glasses, facialHair: a.facialHair, hair: a.hair,
        makeup: a.makeup, occlusion: a.occlusion, accessories: a.accessories,
      }) : "";
      body.append(el("tr", { "data-face": entry.key, "data-rect": `${r.left},${r.top},${r.width},${r.height}`, "data-attributes": attrs }, cells));
    }
    table.append(body);
    return el("div", { class: "table-wrap" }, table);
  }

  function emotionText(emotion) {
    const ranked = Object.entries(emotion).sort((x, y) => y[1] - x[1]);
    const shown = ranked.filter(([, p], i) => i === 0 || p >= 0.05);
    return el("span", { title: ranked.map(([n, p]) => `${n} ${pct(p)}`).join(", ") }, shown.map(([n, p]) => `${n} ${pct(p)}`).join(", "));
  }

  function appearanceText(a) {
    const parts = [a.glasses.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase()];
    const hair = Object.entries(a.facialHair).filter(([, v]) => v >= 0.5).map(([k]) => k);
    parts.push(hair.length ? hair.join(" + ") : "no facial hair");
    if (a.hair.invisible) parts.push("hair not visible");
    else parts.push(a.hair.bald >= 0.5 ? `bald (${pct(a.hair.bald)})` : `${a.hair.hairColor[0]?.color ?? "unknown"} hair`);
    const makeup = [a.makeup.eyeMakeup && "eye", a.makeup.lipMakeup && "lip"].filter(Boolean);
    if (makeup.length) parts.push(`${makeup.join(" + ")} makeup`);
    const occluded = [a.occlusion.foreheadOccluded && "forehead", a.occlusion.eyeOccluded && "eye", a.occlusion.mouthOccluded && "mouth"].filter(Boolean);
    if (occluded.length) parts.push(`${occluded.join(" + ")} occluded`);
    for (const x of a.accessories) if (x.type !== "glasses") parts.push(`${x.type} (${pct(x.confidence)})`);
    return parts.join(" · ");
  }

  function timingList(rows) {
    return el("dl", { class: "timings", "data-testid": "timings" },
      rows.filter(([, v]) => typeof v === "number").map(([name, v]) => el("div", {}, el("dt", { text: name }), el("dd", { text: ms(v) }))));
  }

  // --- compare --------------------------------------------------------------------------------
  const selects = { a: $("face-a"), b: $("face-b") };
  const comparable = () => [...state.faces.values()].filter((e) => e.face.embedding);

  function refreshFaceLists() {
    const entries = comparable();
    for (const [side, select] of Object.entries(selects)) {
      const previous = select.value;
      select.replaceChildren(el("option", { value: "", text: entries.length ? "Choose a face…" : "No faces yet" }),
        ...entries.map((e) => el("option", { value: e.key, text: faceLabel(e) })));
      select.disabled = entries.length === 0;
      select.value = state.faces.has(previous) ? previous : "";
      showThumb(side);
    }
    // Something to compare straight away: the first two faces.
    if (!selects.a.value && entries[0]) selects.a.value = entries[0].key;
    if (!selects.b.value && entries[1]) selects.b.value = entries.find((e) => e.key !== selects.a.value)?.key ?? "";
    showThumb("a");
    showThumb("b");
    $("group-btn").disabled = entries.length === 0;
    compare();
  }

  function showThumb(side) {
    const entry = state.faces.get(selects[side].value);
    $(`thumb-${side}`).replaceChildren(...(entry ? [thumbnail(entry, 96)] : []));
  }

  function pick(side, key) {
    selects[side].value = key;
    showThumb(side);
    compare();
    selects[side].focus();
  }

  let compareSeq = 0;
  async function compare() {
    const out = $("compare-result");
    const a = state.faces.get(selects.a.value);
    const b = state.faces.get(selects.b.value);
    const seq = ++compareSeq;
    delete out.dataset.identical;
    delete out.dataset.confidence;
    out.dataset.a = a?.key ?? "";
    out.dataset.b = b?.key ?? "";
    out.className = "result";
    if (!a || !b) {
      out.textContent = comparable().length < 2 ? "Load photos with at least two faces in all to compare." : "Choose two faces.";
      return;
    }
    try {
      const result = await engine.call({ type: "verify", a: a.face.embedding, b: b.face.embedding });
      if (seq !== compareSeq) return;
      out.dataset.identical = String(result.isIdentical);
      out.dataset.confidence = String(result.confidence);
      out.className = `result ${result.isIdentical ? "same" : "different"}`;
      out.replaceChildren(
        el("strong", { text: result.isIdentical ? "Same person" : "Different people" }),
        ` — confidence ${result.confidence.toFixed(3)}, isIdentical ${result.isIdentical} `,
        el("span", { class: "muted", text: `(${faceLabel(a)} vs ${faceLabel(b)}; verify ${ms(result.ms)})` }));
    } catch (e) {
      if (seq !== compareSeq) return;
      out.textContent = `These faces could not be compared (${e.name}: ${e.message}).`;
    }
  }
  for (const [side, select] of Object.entries(selects)) {
    select.addEventListener("change", () => {
      showThumb(side);
      compare();
    });
  }

  // --- group ----------------------------------------------------------------------------------
  $("group-btn").addEventListener("click", async () => {
    const out = $("group-result");
    const entries = comparable();
    if (!entries.length) return;
    try {
      const result = await engine.call({ type: "group", embeddings: entries.map((e) => e.face.embedding) });
      const faceList = (indices) => el("ul", { class: "thumbs" }, indices.map((i) => el("li", {}, thumbnail(entries[i]), el("span", { text: faceLabel(entries[i]) }))));
      out.dataset.groups = String(result.groups.length);
      out.dataset.messy = String(result.messyGroup.length);
      out.replaceChildren(
        el("p", { text: `${entries.length} faces: ${result.groups.length} ${result.groups.length === 1 ? "group" : "groups"}, ${result.messyGroup.length} in the messy group (grouping took ${ms(result.ms)}).` }),
        ...result.groups.map((g, n) => el("div", { class: "group", "data-testid": "group" }, el("h3", { text: `Group ${n + 1} · ${g.length} faces` }), faceList(g))),
        result.messyGroup.length
          ? el("div", { class: "group messy", "data-testid": "messy-group" }, el("h3", { text: `Messy group · ${result.messyGroup.length} ${result.messyGroup.length === 1 ? "face" : "faces"} like no other` }), faceList(result.messyGroup))
          : null);
    } catch (e) {
      out.textContent = `The faces could not be grouped (${e.name}: ${e.message}).`;
    }
  });

  // --- files: input, drop, paste -------------------------------------------------------------
  const input = $("file-input");
  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";
  });
  const zone = $("dropzone");
  // A drop anywhere must not navigate away from the page.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (e) => e.preventDefault());
  zone.addEventListener("dragenter", () => zone.classList.add("over"));
  zone.addEventListener("dragover", (e) => {
    e.dataTransfer.dropEffect = "copy";
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", (e) => {
    if (!zone.contains(e.relatedTarget)) zone.classList.remove("over");
  });
  window.addEventListener("drop", (e) => {
    zone.classList.remove("over");
    if (e.dataTransfer?.files?.length) addFiles(e.dataTransfer.files);
  });
  window.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData?.files ?? [])];
    if (files.length) addFiles(files);
  });

  // --- camera ---------------------------------------------------------------------------------
  const video = $("video");
  const overlay = $("video-overlay");

  function cameraMessage(e) {
    switch (e && e.name) {
      case "NotAllowedError":
      case "PermissionDeniedError":
        return "Camera access was refused. To use live detection, allow the camera for this page in the browser's site settings, then try again.";
      case "NotFoundError":
      case "DevicesNotFoundError":
      case "OverconstrainedError":
        return "No camera was found on this device.";
      case "NotReadableError":
      case "TrackStartError":
      case "AbortError":
        return "The camera could not be started: another application may be using it.";
      case "SecurityError":
      case "NoMediaDevices":
        return "The camera is only available on a secure page (https, or http on localhost).";
      default:
        return "The camera could not be started.";
    }
  }

  $("camera-start").addEventListener("click", async () => {
    if (state.camera) return;
    const start = $("camera-start");
    start.disabled = true;
    try {
      if (!navigator.mediaDevices?.getUserMedia) throw namedError("NoMediaDevices", "navigator.mediaDevices is not available here");
      const stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" }, audio: false });
      state.camera = { stream, running: true, frames: 0, since: performance.now() };
      $("camera").hidden = false;
      video.srcObject = stream;
      await video.play();
      for (const track of stream.getVideoTracks()) track.addEventListener("ended", stopCamera);
      $("camera-stop").focus();
      cameraLoop(state.camera);
    } catch (e) {
      stopCamera();
      const message = say("error", cameraMessage(e), `${e.name}: ${e.message}`);
      message.dataset.testid = "camera-message";
      start.disabled = !state.ready;
    }
  });

  function stopCamera() {
    const camera = state.camera;
    state.camera = null;
    if (camera) {
      camera.running = false;
      for (const track of camera.stream.getTracks()) track.stop();
    }
    video.srcObject = null;
    $("camera").hidden = true;
    $("camera-start").disabled = !state.ready;
    if (camera) $("camera-start").focus();
  }
  $("camera-stop").addEventListener("click", stopCamera);

  const grab = document.createElement("canvas");
  function grabFrame() {
    const w = video.videoWidth;
    const h = video.videoHeight;
    if (!w || !h) return null;
    const scale = Math.min(1, 640 / Math.max(w, h));
    grab.width = Math.round(w * scale);
    grab.height = Math.round(h * scale);
    const ctx = grab.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, grab.width, grab.height);
    return ctx.getImageData(0, 0, grab.width, grab.height);
  }

  /** One frame in flight at a time, and at most ~8 a second. */
  async function cameraLoop(camera) {
    const MIN_INTERVAL = 120;
    const stats = $("camera-stats");
    while (camera.running) {
      const started = performance.now();
      const tGrab = performance.now();
      const frame = grabFrame();
      const grabMs = performance.now() - tGrab;
      if (frame) {
        try {
          const answer = await engine.call({ type: "detect", image: { data: frame.data, width: frame.width, height: frame.height }, options: LIVE_OPTIONS });
          if (!camera.running) break;
          overlay.width = frame.width;
          overlay.height = frame.height;
          const ctx = overlay.getContext("2d");
          ctx.clearRect(0, 0, overlay.width, overlay.height);
          drawFaces(ctx, answer.faces, overlay.width, overlay.height);
          camera.frames++;
          const fps = camera.frames / ((performance.now() - camera.since) / 1000);
          stats.textContent = `${answer.faces.length} ${answer.faces.length === 1 ? "face" : "faces"} · frame ${frame.width}×${frame.height} · capture ${ms(grabMs)} · detect ${ms(answer.ms)} · ${fps.toFixed(1)} frames/s`;
        } catch (e) {
          if (!camera.running) break;
          stats.textContent = `Frame skipped: ${e.name}: ${e.message}`;
        }
      }
      const wait = Math.max(MIN_INTERVAL - (performance.now() - started), frame ? 0 : 100);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  $("camera-snapshot").addEventListener("click", () => {
    if (!state.camera || !video.videoWidth) return;
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob((blob) => {
      if (blob) addFiles([new File([blob], `camera-${new Date().toISOString().slice(11, 19).replaceAll(":", "")}.jpg`, { type: "image/jpeg" })]);
    }, "image/jpeg", 0.92);
  });
}

startPage();
