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

/// GET /swagger/v1/swagger.json: the document, generated on the first request (it depends only
/// on the table and the types).
pub async fn document(State(_): State<Shared>) -> Response {
    static DOCUMENT: std::sync::LazyLock<Value> = std::sync::LazyLock::new(openapi);
    axum::Json(&*DOCUMENT).into_response()
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
mod tests;
