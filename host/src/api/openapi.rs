//! The OpenAPI 3.1 document of this service and the `/swagger` page, both generated from the
//! operation table ([`OPERATIONS`]) the router is built from, with every parameter, body and
//! answer schema taken from the wire types ([`super::wire`]).
//!
//! Face.json (Swagger 2.0) tells two bodies on one route apart with `?overload=` paths. OpenAPI 3
//! has one operation per route and method, so such rows share one: the image operations take
//! `application/json` (`ImageUrl`) or `application/octet-stream` (the bytes; Swagger UI offers a
//! file picker), `/verify` either body (`oneOf`). `x-operationIds` lists the spec's operationIds
//! the operation serves.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Map, Value, json};
use utoipa::openapi::path::ParameterIn;
use utoipa::{IntoParams, ToSchema};

use super::input::PathParam;
use super::routes::{OPERATIONS, Operation};
use super::state::Shared;
use super::wire::{self, ATTRIBUTES};

/// How each attribute is computed, for `/swagger` (the README and face-core's `appearance`
/// module say the same at length).
const ATTRIBUTE_METHODS: &str = "How they are computed (detection_01 only). \
Age and gender: face-api.js AgeGenderNet. \
Emotion: face-api.js FaceExpressionNet's seven, plus contempt from the asymmetry of the mouth corners (a one-sided lip-corner raise, FACS AU12/AU14), taken from the neutral and happiness share; the eight sum to 1. \
Smile: the expression net's happy probability. \
HeadPose: a fit of the 68 landmarks to a generic 3-D face. \
Blur, exposure, noise: Laplacian variance, mean luminance and Immerkaer's noise estimate on the face region. \
Glasses: the edge a frame puts across the nose bridge; sunglasses when the eye regions are also dark (swimming goggles are not told apart). \
FacialHair: darkness (or, for grey and white hair, the loss of the skin's tint) and edge density against the cheeks' skin between nose and upper lip (moustache), on the chin and beside the mouth (beard) and in front of the ears (sideburns, only beside a moustache or beard). \
Hair: the colour of the scalp region above the forehead: bald as it nears the forehead's colour, hairColor by distance to a prototype colour of each, invisible when the region is out of the image or holds headwear. \
Makeup: lips redder than the skin; eyelids more chromatic than the skin. \
Occlusion: eyes or lips with fewer edges than the cheeks, a forehead far from the skin's colour, a mouth under a mask. \
Accessories: glasses as above; a mask when the cheeks differ in colour from the skin above a mask's edge and the lips lose their edges; headwear in a colour no hair has. \
These derived values are measured by cargo xtask eval; see the README.";

/// The schemas the document names, gathered as operations refer to them.
#[derive(Default)]
struct Schemas(Map<String, Value>);

impl Schemas {
    /// A reference to `T`'s schema, adding it and the schemas it refers to.
    fn of<T: ToSchema>(&mut self) -> Value {
        let mut found = Vec::new();
        T::schemas(&mut found);
        found.push((T::name().into_owned(), T::schema()));
        for (name, schema) in found {
            self.0.entry(name).or_insert_with(|| serde_json::to_value(schema).unwrap_or(Value::Null));
        }
        json!({ "$ref": format!("#/components/schemas/{}", T::name()) })
    }

    /// An array of `T`.
    fn array_of<T: ToSchema>(&mut self) -> Value {
        json!({ "type": "array", "items": self.of::<T>() })
    }
}

/// The query parameters of `T`.
fn query<T: IntoParams>() -> Vec<Value> {
    T::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
        .collect()
}

/// What an operation takes besides its route's ids, and what it answers.
#[derive(Default)]
struct Shape {
    query: Vec<Value>,
    /// The JSON body's schema.
    json: Option<Value>,
    /// Whether the body may instead be the image's bytes.
    bytes: bool,
    reply: Option<Value>,
}

/// The shape of one row of the table, by its tag and verb (the collection verbs shared by the
/// kinds, for the four kinds by name). A row with a tag or verb not here has none, and the
/// document's test fails for it rather than let it go undocumented.
fn shape(op: &Operation, s: &mut Schemas) -> Option<Shape> {
    use wire::*;
    let id = op.id;
    let (_, verb) = id.split_once('_')?;
    let kind_reply = |s: &mut Schemas| match op.tag() {
        "PersonGroup" => Some(s.of::<PersonGroup>()),
        "LargePersonGroup" => Some(s.of::<LargePersonGroup>()),
        "FaceList" => Some(s.of::<FaceList>()),
        "LargeFaceList" => Some(s.of::<LargeFaceList>()),
        _ => None,
    };
    let image = |s: &mut Schemas| Some(s.of::<ImageUrl>());
    Some(match (op.tag(), verb) {
        ("Face", "DetectWithUrl" | "DetectWithStream") => Shape {
            query: query::<DetectQuery>(),
            json: image(s),
            bytes: true,
            reply: Some(s.array_of::<DetectedFace>()),
        },
        ("Face", "FindSimilar") => Shape {
            json: Some(s.of::<FindSimilarRequest>()),
            reply: Some(s.array_of::<SimilarFace>()),
            ..Shape::default()
        },
        ("Face", "Group") => {
            Shape { json: Some(s.of::<GroupRequest>()), reply: Some(s.of::<GroupResult>()), ..Shape::default() }
        }
        ("Face", "Identify") => Shape {
            json: Some(s.of::<IdentifyRequest>()),
            reply: Some(s.array_of::<IdentifyResult>()),
            ..Shape::default()
        },
        ("Face", "VerifyFaceToFace" | "VerifyFaceToPerson") => Shape {
            json: Some(json!({ "oneOf": [s.of::<VerifyFaceToFaceRequest>(), s.of::<VerifyFaceToPersonRequest>()] })),
            reply: Some(s.of::<VerifyResult>()),
            ..Shape::default()
        },
        (_, "AddFaceFromUrl" | "AddFaceFromStream") => Shape {
            query: query::<AddFaceQuery>(),
            json: image(s),
            bytes: true,
            reply: Some(s.of::<PersistedFaceAdded>()),
        },
        (_, "Create") if op.method == "PUT" => Shape { json: Some(s.of::<MetaDataContract>()), ..Shape::default() },
        (_, "Create") => Shape {
            json: Some(s.of::<NameAndUserDataContract>()),
            reply: Some(s.of::<PersonCreated>()),
            ..Shape::default()
        },
        ("Snapshot", "Update") => Shape { json: Some(s.of::<UpdateSnapshotRequest>()), ..Shape::default() },
        (_, "Update") => Shape { json: Some(s.of::<NameAndUserDataContract>()), ..Shape::default() },
        (_, "UpdateFace") => Shape { json: Some(s.of::<UpdateFaceRequest>()), ..Shape::default() },
        (_, "Delete" | "DeleteFace" | "Train") => Shape::default(),
        ("PersonGroupPerson" | "LargePersonGroupPerson", "Get") => {
            Shape { reply: Some(s.of::<Person>()), ..Shape::default() }
        }
        ("PersonGroupPerson" | "LargePersonGroupPerson", "List") => {
            Shape { query: query::<ListQuery>(), reply: Some(s.array_of::<Person>()), ..Shape::default() }
        }
        ("Snapshot", "Get") => Shape { reply: Some(s.of::<Snapshot>()), ..Shape::default() },
        ("Snapshot", "List") => {
            Shape { query: query::<SnapshotListQuery>(), reply: Some(s.array_of::<Snapshot>()), ..Shape::default() }
        }
        ("Snapshot", "Take") => Shape { json: Some(s.of::<TakeSnapshotRequest>()), ..Shape::default() },
        ("Snapshot", "Apply") => Shape { json: Some(s.of::<ApplySnapshotRequest>()), ..Shape::default() },
        ("Snapshot", "GetOperationStatus") => Shape { reply: Some(s.of::<OperationStatus>()), ..Shape::default() },
        (_, "Get") => Shape { query: query::<CollectionQuery>(), reply: Some(kind_reply(s)?), ..Shape::default() },
        (_, "List") => {
            let mut params = query::<ListQuery>();
            params.extend(query::<CollectionQuery>());
            let item = kind_reply(s)?;
            Shape { query: params, reply: Some(json!({ "type": "array", "items": item })), ..Shape::default() }
        }
        (_, "GetFace") => Shape { reply: Some(s.of::<PersistedFace>()), ..Shape::default() },
        (_, "ListFaces") => {
            Shape { query: query::<ListQuery>(), reply: Some(s.array_of::<PersistedFace>()), ..Shape::default() }
        }
        (_, "GetTrainingStatus") => Shape { reply: Some(s.of::<TrainingStatus>()), ..Shape::default() },
        _ => return None,
    })
}

/// The document, generated from the table and the wire types.
pub fn openapi() -> Value {
    let mut schemas = Schemas::default();
    let error = schemas.of::<wire::APIError>();
    let mut paths = Map::new();
    for op in OPERATIONS {
        let Some(shape) = shape(op, &mut schemas) else {
            tracing::error!(operation = op.id, "the OpenAPI document has no shape for this operation");
            continue;
        };
        let methods = paths.entry(op.route().to_owned()).or_insert_with(|| json!({}));
        let method = op.method.to_ascii_lowercase();
        if let Some(served) = methods.get_mut(&method) {
            // An overload of a row already written: the same operation, one more spec id.
            if let Some(ids) = served["x-operationIds"].as_array_mut() {
                ids.push(json!(op.id));
            }
            if !op.path.contains("?overload=") {
                served["operationId"] = json!(op.id);
            }
            continue;
        }
        let mut parameters: Vec<Value> = op
            .route()
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        parameters.extend(shape.query);
        let mut entry = json!({
            "operationId": op.id,
            "x-operationIds": [op.id],
            "tags": [op.tag()],
            "parameters": parameters,
            "responses": {
                op.status.to_string(): match &shape.reply {
                    Some(schema) => json!({ "description": "Success", "content": { "application/json": { "schema": schema } } }),
                    None => json!({ "description": "Success" }),
                },
                "default": { "description": "Error response",
                    "content": { "application/json": { "schema": error } } },
            },
        });
        if op.tag() == "Face" && op.id.starts_with("Face_Detect") {
            entry["description"] =
                json!(format!("returnFaceAttributes: any of {}. {ATTRIBUTE_METHODS}", ATTRIBUTES.join(", ")));
        }
        let mut content = Map::new();
        if let Some(schema) = shape.json {
            content.insert("application/json".into(), json!({ "schema": schema }));
        }
        if shape.bytes {
            content.insert(
                "application/octet-stream".into(),
                json!({ "schema": { "type": "string", "format": "binary",
                    "description": "JPEG, PNG, GIF (first frame) or BMP, 1 KB to 6 MB" } }),
            );
        }
        if !content.is_empty() {
            entry["requestBody"] = json!({ "required": true, "content": content });
        }
        methods[method] = entry;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Face API v1.0 (self-hosted)",
            "version": "1.0",
            "description": concat!("face-server ", env!("CARGO_PKG_VERSION"),
                ": the Face v1.0 operations, served by a WebAssembly face engine."),
        },
        "servers": [{ "url": "/face/v1.0" }],
        "security": [{ "apim_key": [] }],
        "paths": paths,
        "components": {
            "schemas": schemas.0,
            "securitySchemes": { "apim_key": { "type": "apiKey", "name": "Ocp-Apim-Subscription-Key", "in": "header" } },
        },
    })
}

/// GET /swagger/v1/swagger.json
pub async fn document(State(_): State<Shared>) -> Response {
    axum::Json(openapi()).into_response()
}

/// The Swagger UI files `/swagger` serves (from npm `swagger-ui-dist`), with their types.
const UI_FILES: [(&str, &str); 4] = [
    ("swagger-ui.css", "text/css"),
    ("swagger-ui-bundle.js", "text/javascript"),
    ("swagger-ui-standalone-preset.js", "text/javascript"),
    ("favicon-32x32.png", "image/png"),
];

/// GET /swagger: Swagger UI over the document when its assets are installed (Server:SwaggerUi),
/// else a plain page listing the operations. Either works offline.
pub async fn swagger_ui(State(state): State<Shared>) -> Html<String> {
    if state.swagger_ui.as_ref().is_some_and(|d| d.join("swagger-ui-bundle.js").is_file()) {
        return Html(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Face API v1.0</title>\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <link rel=\"stylesheet\" href=\"/swagger/ui/swagger-ui.css\">\
             <link rel=\"icon\" href=\"/swagger/ui/favicon-32x32.png\"></head><body><div id=\"swagger-ui\"></div>\
             <script src=\"/swagger/ui/swagger-ui-bundle.js\"></script>\
             <script src=\"/swagger/ui/swagger-ui-standalone-preset.js\"></script>\
             <script>window.ui = SwaggerUIBundle({ url: '/swagger/v1/swagger.json', dom_id: '#swagger-ui', \
             presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: 'StandaloneLayout' });\
             </script></body></html>"
                .to_owned(),
        );
    }
    operations_page()
}

/// GET /swagger/ui/{file}: one of the Swagger UI assets.
pub async fn swagger_asset(State(state): State<Shared>, PathParam(file): PathParam, request: Request) -> Response {
    let found = UI_FILES.iter().find(|(name, _)| *name == file);
    match (found, &state.swagger_ui) {
        (Some((name, mime)), Some(dir)) => {
            super::demo::serve_file(&dir.join(name), request, Some(mime), "max-age=86400").await
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn operations_page() -> Html<String> {
    let mut rows = String::new();
    for op in OPERATIONS {
        rows.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td><code>/face/v1.0{}</code></td><td>{}</td></tr>",
            op.tag(),
            op.method,
            op.path.replace('<', "&lt;"),
            op.id
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Face API v1.0: operations</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head><body>\
         <h1>Face API v1.0: {} operations</h1><p>OpenAPI document: <a href=\"/swagger/v1/swagger.json\">\
         /swagger/v1/swagger.json</a>. Every call needs the header <code>Ocp-Apim-Subscription-Key</code>.</p>\
         <table><thead><tr><th>group</th><th>method</th><th>route</th><th>operationId</th></tr></thead>\
         <tbody>{rows}</tbody></table></body></html>",
        OPERATIONS.len()
    ))
}

#[cfg(test)]
mod tests {
    //! The document against Face.json (the copy in `host/tests/spec/`), operation by operation:
    //! path, method, parameters and whether each is required, the request body's schema (its
    //! properties, their types and which are required) and the answer's schema (its properties
    //! and types; what the spec requires, ours must too). Schemas compare after their
    //! references and `allOf`s are resolved; descriptions, formats and enums do not compare.

    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::openapi;

    /// Parameters the service takes beyond v1.0's, each for a reason the README gives.
    const EXTRA_PARAMETERS: [(&str, &str); 6] = [
        // faceIdTimeToLive: later Face API versions' parameter, taken on v1.0's detect too.
        ("Face_DetectWithUrl", "faceIdTimeToLive"),
        ("Face_DetectWithStream", "faceIdTimeToLive"),
        // Paging on every list of collections, as on the groups' lists (Azure pages these too).
        ("FaceList_List", "start"),
        ("FaceList_List", "top"),
        ("LargeFaceList_List", "start"),
        ("LargeFaceList_List", "top"),
    ];

    fn spec_file(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec").join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    /// A schema with references resolved (by `resolve`) and `allOf`s merged, reduced to what
    /// compares: type, properties, required, items.
    fn norm(schema: &Value, resolve: &dyn Fn(&str) -> Value) -> Value {
        if let Some(r) = schema["$ref"].as_str() {
            return norm(&resolve(r), resolve);
        }
        for key in ["oneOf", "anyOf"] {
            // Option<T> of a named type: `oneOf: [{"type": "null"}, T]`.
            if let Some(options) = schema[key].as_array() {
                let kept: Vec<&Value> = options.iter().filter(|o| o["type"] != "null").collect();
                if kept.len() == 1 {
                    return norm(kept[0], resolve);
                }
            }
        }
        let mut properties = serde_json::Map::new();
        let mut required = BTreeSet::new();
        let mut parts = vec![schema.clone()];
        parts.extend(schema["allOf"].as_array().into_iter().flatten().map(|p| norm(p, resolve)));
        for part in &parts {
            for (name, p) in part["properties"].as_object().into_iter().flatten() {
                properties.insert(name.clone(), norm(p, resolve));
            }
            required.extend(part["required"].as_array().into_iter().flatten().filter_map(|r| r.as_str()));
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(|t| t.as_str()).filter(|t| *t != "null").collect(),
            _ if !properties.is_empty() => vec!["object"],
            _ => vec![],
        };
        let mut out = json!({ "type": types.first().copied().unwrap_or("any") });
        if !properties.is_empty() {
            out["properties"] = Value::Object(properties);
            out["required"] = json!(required);
        }
        if !schema["items"].is_null() {
            out["items"] = norm(&schema["items"], resolve);
        }
        out
    }

    /// The operations whose answer is only the new id (`{"personId"}`, `{"persistedFaceId"}`)
    /// where the spec names the whole type: its own examples (CreateNewPersonGroupPerson.json,
    /// AddFaceListFaceFromUrl.json, ...) and the service answer so.
    fn answers_the_id_alone(id: &str) -> bool {
        id.ends_with("Person_Create") || id.contains("_AddFaceFrom")
    }

    /// How two schemas must agree.
    #[derive(Clone, Copy, PartialEq)]
    enum Rule {
        /// The same properties, types and required fields.
        Request,
        /// The same properties and types; at least the spec's required fields.
        Answer,
        /// Some of the spec's properties, with its types; at least its required fields.
        PartAnswer,
    }

    /// Where `ours` differs from `spec` under `rule`.
    fn differences(at: &str, spec: &Value, ours: &Value, rule: Rule, out: &mut Vec<String>) {
        if spec["type"] != ours["type"] {
            out.push(format!("{at}: type {} in the spec, {} here", spec["type"], ours["type"]));
            return;
        }
        let names = |v: &Value| -> BTreeSet<String> {
            v["properties"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
        };
        let (theirs, mine) = (names(spec), names(ours));
        if if rule == Rule::PartAnswer { !mine.is_subset(&theirs) } else { theirs != mine } {
            out.push(format!("{at}: properties {theirs:?} in the spec, {mine:?} here"));
        }
        let set = |v: &Value| -> BTreeSet<String> {
            v["required"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(String::from)).collect()
        };
        let (spec_required, our_required) = (set(spec), set(ours));
        let request = rule == Rule::Request;
        if request && spec_required != our_required || !request && !spec_required.is_subset(&our_required) {
            out.push(format!("{at}: required {spec_required:?} in the spec, {our_required:?} here"));
        }
        for name in theirs.intersection(&mine) {
            let (a, b) = (&spec["properties"][name], &ours["properties"][name]);
            differences(&format!("{at}.{name}"), a, b, rule, out);
        }
        if !spec["items"].is_null() {
            differences(&format!("{at}[]"), &spec["items"], &ours["items"], rule, out);
        }
    }

    #[test]
    fn the_document_matches_face_json_operation_by_operation() {
        let spec = spec_file("Face.json");
        let common = spec_file("Common-Parameters.json");
        let doc = openapi();
        let resolve_spec = |r: &str| -> Value {
            // Common-Parameters.json's own references (`#/definitions/ImageUrl`) are local to it;
            // Face.json has no definition of the same name, so looking there first finds them.
            let (file, pointer) = r.split_once('#').unwrap_or(("", r));
            let found = if file.is_empty() {
                spec.pointer(pointer).or_else(|| common.pointer(pointer))
            } else {
                common.pointer(pointer)
            };
            found.cloned().unwrap_or_else(|| panic!("the spec's reference {r} does not resolve"))
        };
        let resolve_ours = |r: &str| -> Value {
            doc.pointer(r.trim_start_matches('#'))
                .cloned()
                .unwrap_or_else(|| panic!("our reference {r} does not resolve"))
        };
        let mut wrong = Vec::new();
        let mut seen = 0;
        let mut spec_ops = std::collections::BTreeMap::new();
        for section in ["paths", "x-ms-paths"] {
            for (path, ops) in spec[section].as_object().unwrap() {
                for (method, op) in ops.as_object().unwrap() {
                    seen += 1;
                    let id = op["operationId"].as_str().unwrap();
                    spec_ops.insert(id.to_owned(), op.clone());
                    let route = path.split('?').next().unwrap();
                    let ours = &doc["paths"][route][method];
                    if !ours["x-operationIds"].as_array().is_some_and(|ids| ids.contains(&json!(id))) {
                        wrong.push(format!("{id}: not at {method} {route}"));
                        continue;
                    }
                    // Parameters: name, place, required.
                    let mut body = None;
                    let mut theirs = BTreeSet::new();
                    for p in op["parameters"].as_array().unwrap() {
                        let p = match p["$ref"].as_str() {
                            Some(r) => resolve_spec(r),
                            None => p.clone(),
                        };
                        match p["in"].as_str().unwrap() {
                            "body" => body = Some(p["schema"].clone()),
                            place => {
                                theirs.insert((
                                    p["name"].as_str().unwrap().to_owned(),
                                    place.to_owned(),
                                    p["required"] == true,
                                ));
                            }
                        }
                    }
                    let mine: BTreeSet<(String, String, bool)> = ours["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| {
                            (
                                p["name"].as_str().unwrap().to_owned(),
                                p["in"].as_str().unwrap().to_owned(),
                                p["required"] == true,
                            )
                        })
                        .filter(|(name, _, _)| !EXTRA_PARAMETERS.contains(&(id, name.as_str())))
                        .collect();
                    if theirs != mine {
                        wrong.push(format!("{id}: parameters {theirs:?} in the spec, {mine:?} here"));
                    }
                    // The body.
                    let content = &ours["requestBody"]["content"];
                    match body {
                        None if !ours["requestBody"].is_null() => wrong.push(format!("{id}: a body the spec has not")),
                        None => {}
                        Some(schema)
                            if schema["format"] == "file"
                                && content["application/octet-stream"]["schema"]["format"] != "binary" =>
                        {
                            wrong.push(format!("{id}: no application/octet-stream body"));
                        }
                        Some(schema) if schema["format"] == "file" => {}
                        Some(schema) => {
                            let theirs = norm(&schema, &resolve_spec);
                            let json_body = &content["application/json"]["schema"];
                            let candidates: Vec<Value> = match json_body["oneOf"].as_array() {
                                Some(options) => options.clone(),
                                None => vec![json_body.clone()],
                            };
                            let fits = candidates.iter().map(|c| {
                                let mut d = Vec::new();
                                differences(
                                    &format!("{id} body"),
                                    &theirs,
                                    &norm(c, &resolve_ours),
                                    Rule::Request,
                                    &mut d,
                                );
                                d
                            });
                            let best = fits.min_by_key(Vec::len).unwrap_or_else(|| vec![format!("{id}: no JSON body")]);
                            wrong.extend(best);
                        }
                    }
                    // The answer.
                    for (status, response) in op["responses"].as_object().unwrap() {
                        let mine = &ours["responses"][status];
                        if mine.is_null() {
                            wrong.push(format!("{id}: no {status} answer"));
                            continue;
                        }
                        let theirs = &response["schema"];
                        let schema = &mine["content"]["application/json"]["schema"];
                        match (theirs.is_null(), schema.is_null()) {
                            (true, true) => {}
                            (false, false) => differences(
                                &format!("{id} {status}"),
                                &norm(theirs, &resolve_spec),
                                &norm(schema, &resolve_ours),
                                if answers_the_id_alone(id) { Rule::PartAnswer } else { Rule::Answer },
                                &mut wrong,
                            ),
                            _ => wrong.push(format!("{id} {status}: a schema on one side only")),
                        }
                    }
                }
            }
        }
        assert_eq!(seen, 69);
        // The other direction: nothing in the document that the spec lacks. Every operation
        // serves spec operationIds only; its answer codes and media types are those ids' own.
        for (route, methods) in doc["paths"].as_object().unwrap() {
            for (method, ours) in methods.as_object().unwrap() {
                let ids: Vec<&str> =
                    ours["x-operationIds"].as_array().into_iter().flatten().filter_map(|i| i.as_str()).collect();
                if ids.is_empty() {
                    wrong.push(format!("{method} {route}: no x-operationIds"));
                    continue;
                }
                let Some(theirs) = ids.iter().map(|id| spec_ops.get(*id)).collect::<Option<Vec<&Value>>>() else {
                    wrong.push(format!("{method} {route}: {ids:?} are not all operations of the spec"));
                    continue;
                };
                for status in ours["responses"].as_object().unwrap().keys() {
                    if !theirs.iter().any(|op| op["responses"].get(status).is_some()) {
                        wrong.push(format!("{method} {route}: a {status} answer the spec has not"));
                    }
                }
                for media in ours["requestBody"]["content"].as_object().into_iter().flatten().map(|(m, _)| m) {
                    // Face.json has no top-level `consumes`: an operation without its own is taken
                    // to consume JSON (every such operation of the spec takes a JSON body).
                    let consumed = |op: &&Value| match op["consumes"].as_array() {
                        Some(c) => c.contains(&json!(media)),
                        None => media == "application/json",
                    };
                    if !theirs.iter().any(consumed) {
                        wrong.push(format!("{method} {route}: a {media} body the spec has not"));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{} differences from Face.json:\n{}", wrong.len(), wrong.join("\n"));
    }
}
