//! The document against Face.json (the copy in `host/tests/spec/`), operation by operation:
//! path, method, parameters and whether each is required, the request body's schema (its
//! properties, their types and which are required) and the answer's schema (its properties
//! and types; what the spec requires, ours must too); and the other way, no operation, answer
//! code or request media type the spec lacks. Schemas compare after their references and
//! `allOf`s are resolved; descriptions, formats and enums do not compare.

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
    // The crate's folder at run time (cargo test sets it): clones share one target folder.
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = std::path::Path::new(&crate_dir).join("tests/spec").join(name);
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
        doc.pointer(r.trim_start_matches('#')).cloned().unwrap_or_else(|| panic!("our reference {r} does not resolve"))
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
                            differences(&format!("{id} body"), &theirs, &norm(c, &resolve_ours), Rule::Request, &mut d);
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
