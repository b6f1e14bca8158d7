//! The OpenAPI (Swagger 2.0) document of this service and the `/swagger` page, both generated
//! from the operation table ([`OPERATIONS`]) the router is built from.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::detect::ATTRIBUTES;
use super::input::PathParam;
use super::routes::OPERATIONS;
use super::state::Shared;

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

/// The document, generated from the table.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for op in OPERATIONS {
        let mut parameters: Vec<Value> = op
            .route()
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "type": "string" }))
            .collect();
        let consumes = match op.image() {
            Some("stream") => {
                parameters.push(json!({ "name": "Image", "in": "body", "required": true,
                    "description": "JPEG, PNG, GIF (first frame) or BMP, 1 KB to 6 MB",
                    "schema": { "type": "string", "format": "binary" } }));
                vec!["application/octet-stream"]
            }
            Some(_) => {
                parameters.push(json!({ "name": "ImageUrl", "in": "body", "required": true,
                    "schema": { "type": "object", "required": ["url"], "properties": { "url": { "type": "string" } } } }));
                vec!["application/json"]
            }
            None if matches!(op.method, "POST" | "PUT" | "PATCH") => vec!["application/json"],
            None => vec![],
        };
        let mut description = String::new();
        if op.id.starts_with("Face_Detect") {
            description = format!("returnFaceAttributes: any of {}. {ATTRIBUTE_METHODS}", ATTRIBUTES.join(", "));
        }
        let entry = json!({
            "operationId": op.id,
            "tags": [op.tag()],
            "description": description,
            "consumes": consumes,
            "produces": ["application/json"],
            "parameters": parameters,
            "responses": {
                op.status.to_string(): { "description": "Success" },
                "default": { "description": "Error response", "schema": { "$ref": "#/definitions/APIError" } },
            },
        });
        let methods = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        methods[op.method.to_ascii_lowercase()] = entry;
    }
    json!({
        "swagger": "2.0",
        "info": {
            "title": "Face API v1.0 (self-hosted)",
            "version": "1.0",
            "description": concat!("face-server ", env!("CARGO_PKG_VERSION"),
                ": the Face v1.0 operations, served by a WebAssembly face engine."),
        },
        "basePath": "/face/v1.0",
        "schemes": ["http"],
        "securityDefinitions": { "apim_key": { "type": "apiKey", "name": "Ocp-Apim-Subscription-Key", "in": "header" } },
        "security": [{ "apim_key": [] }],
        "paths": paths,
        "definitions": {
            "APIError": { "type": "object", "properties": { "error": { "type": "object", "properties": {
                "code": { "type": "string" }, "message": { "type": "string" } } } } },
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
