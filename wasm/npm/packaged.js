// The files that come with the package, for both entry points. Each is named by a literal
// `new URL("./…", import.meta.url)`, so bundlers (Vite, webpack, esbuild) copy it into the build
// as an asset, and Node reads it from the package folder. Only the main thread imports this
// module: the worker is handed the files' URLs or bytes.
export const packagedWasm = () => new URL("./dist/face_engine_bg.wasm", import.meta.url);

export const packagedModels = () => ({
  detector: new URL("./models/face_detection_yunet_2023mar.onnx", import.meta.url),
  landmarks68: new URL("./models/faceapi_landmark68.onnx", import.meta.url),
  sface: new URL("./models/face_recognition_sface_2021dec_int8bq.onnx", import.meta.url),
  faceapiRecognizer: new URL("./models/faceapi_recognition.onnx", import.meta.url),
  ageGender: new URL("./models/faceapi_age_gender.onnx", import.meta.url),
  expression: new URL("./models/faceapi_expression.onnx", import.meta.url),
});
