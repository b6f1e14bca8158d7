//! The query parameters of the operations that take some, as types: each is read from the
//! query string (names compare case-insensitively, as on Azure) with the Face API's checks and
//! errors, and documents itself in the OpenAPI document (`IntoParams`).

use utoipa::IntoParams;

use crate::api::error::{ApiError, ApiResult};
use crate::api::input::{self, Query};
use crate::faces::FACE_ID_TTL;

/// The attribute names `returnFaceAttributes` may list.
pub const ATTRIBUTES: [&str; 14] = [
    "age",
    "gender",
    "headPose",
    "smile",
    "facialHair",
    "glasses",
    "emotion",
    "hair",
    "makeup",
    "occlusion",
    "accessories",
    "blur",
    "exposure",
    "noise",
];

/// `POST /detect`'s parameters.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct DetectQuery {
    /// Return faceIds of the detected faces (default true).
    #[param(required = false, default = true)]
    pub return_face_id: bool,
    /// Return the 27 landmarks of each face (default false).
    #[param(required = false, default = false)]
    pub return_face_landmarks: bool,
    /// Comma-separated attribute groups: age, gender, headPose, smile, facialHair, glasses,
    /// emotion, hair, makeup, occlusion, accessories, blur, exposure, noise (detection_01 only).
    #[param(required = false, value_type = String)]
    pub return_face_attributes: Vec<&'static str>,
    /// recognition_01 (default), recognition_02 or recognition_03: the model the faceIds are
    /// embedded with.
    #[param(required = false, value_type = String)]
    pub recognition_model: &'static str,
    /// Return each face's recognitionModel (default false).
    #[param(required = false, default = false)]
    pub return_recognition_model: bool,
    /// detection_01 (default) or detection_02.
    #[param(required = false, value_type = String)]
    pub detection_model: &'static str,
    /// Seconds the faceIds are kept: 60 to 86400, default 86400 (a parameter of later Face API
    /// versions, taken here too).
    #[param(required = false, minimum = 60, maximum = 86400)]
    pub face_id_time_to_live: u64,
}

impl DetectQuery {
    /// The parameters, checked in the order the service checks them (the first bad one is the
    /// one the error names).
    pub fn read(q: &Query) -> ApiResult<DetectQuery> {
        let (default_ttl, min_ttl, max_ttl) = FACE_ID_TTL;
        let return_face_id = q.bool("returnFaceId", true)?;
        let return_face_landmarks = q.bool("returnFaceLandmarks", false)?;
        let return_recognition_model = q.bool("returnRecognitionModel", false)?;
        let return_face_attributes = attributes(q)?;
        let recognition_model = input::recognition_model(q.get("recognitionModel"))?;
        let detection_model = input::detection_model(q)?;
        let face_id_time_to_live =
            q.int("faceIdTimeToLive", default_ttl as i64, min_ttl as i64, max_ttl as i64)? as u64;
        Ok(DetectQuery {
            return_face_id,
            return_face_landmarks,
            return_face_attributes,
            recognition_model,
            return_recognition_model,
            detection_model,
            face_id_time_to_live,
        })
    }
}

fn attributes(q: &Query) -> ApiResult<Vec<&'static str>> {
    let Some(raw) = q.get("returnFaceAttributes").filter(|s| !s.trim().is_empty()) else { return Ok(vec![]) };
    let mut wanted = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let name = ATTRIBUTES
            .into_iter()
            .find(|a| a.eq_ignore_ascii_case(part))
            .ok_or_else(|| ApiError::bad_argument(format!("Invalid argument returnFaceAttributes: {part:?}.")))?;
        if !wanted.contains(&name) {
            wanted.push(name);
        }
    }
    Ok(wanted)
}

/// The parameters of a face's add to a person or a list.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct AddFaceQuery {
    /// At most 1 KB, kept with the face.
    #[param(required = false)]
    pub user_data: Option<String>,
    /// `left,top,width,height` of the face to add, when the photo has more than one.
    #[param(required = false, value_type = String)]
    pub target_face: Option<[u32; 4]>,
    /// detection_01 (default) or detection_02.
    #[param(required = false, value_type = String)]
    pub detection_model: &'static str,
}

impl AddFaceQuery {
    pub fn read(q: &Query) -> ApiResult<AddFaceQuery> {
        Ok(AddFaceQuery {
            user_data: input::user_data(q.get("userData"), 1024)?,
            target_face: input::target_face(q)?,
            detection_model: input::detection_model(q)?,
        })
    }
}

/// A collection's get, and the lists of collections.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct CollectionQuery {
    /// Return the collection's recognitionModel (default false).
    #[param(required = false, default = false)]
    pub return_recognition_model: bool,
}

impl CollectionQuery {
    pub fn read(q: &Query) -> ApiResult<CollectionQuery> {
        Ok(CollectionQuery { return_recognition_model: q.bool("returnRecognitionModel", false)? })
    }
}

/// Paging: the entries after `start`, at most `top`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ListQuery {
    /// List the entries whose id is greater than this (at most 64 characters).
    #[param(required = false)]
    pub start: Option<String>,
    /// How many entries: 1 to 1000 (default 1000).
    #[param(required = false, minimum = 1, maximum = 1000)]
    pub top: usize,
}

impl ListQuery {
    pub fn read(q: &Query) -> ApiResult<ListQuery> {
        Ok(ListQuery { start: q.start()?, top: q.top()? })
    }
}

/// `GET /snapshots`'s filters.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct SnapshotListQuery {
    /// FaceList, LargeFaceList, LargePersonGroup or PersonGroup.
    #[param(rename = "type", required = false, value_type = String)]
    pub kind: Option<crate::store::Kind>,
    /// Comma-separated subscription ids (UUIDs): the snapshots whose applyScope has them all.
    #[param(required = false, value_type = String)]
    pub apply_scope: Vec<String>,
}

impl SnapshotListQuery {
    pub fn read(q: &Query) -> ApiResult<SnapshotListQuery> {
        let kind = match q.get("type").filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => {
                Some(crate::store::Kind::from_name(t).ok_or_else(|| ApiError::bad_argument("'type' is invalid."))?)
            }
        };
        let apply_scope = match q.get("applyScope").filter(|s| !s.is_empty()) {
            None => vec![],
            Some(s) => s.split(',').map(|id| input::uuid(id.trim(), "applyScope entry")).collect::<ApiResult<_>>()?,
        };
        Ok(SnapshotListQuery { kind, apply_scope })
    }
}

#[cfg(test)]
mod tests {
    //! Each query type reads the parameters it documents: every documented name, set to a value
    //! other than its default, comes back in the type (so a name spelt one way in `read` and
    //! another in the document fails here), and the documented limits are the ones checked.

    use serde_json::Value;
    use utoipa::IntoParams;
    use utoipa::openapi::path::ParameterIn;

    use super::*;

    /// The names `T` documents, in order.
    fn documented<T: IntoParams>() -> Vec<(String, Value)> {
        T::into_params(|| Some(ParameterIn::Query))
            .into_iter()
            .map(|p| {
                let v = serde_json::to_value(&p).unwrap();
                (v["name"].as_str().unwrap().to_owned(), v["schema"].clone())
            })
            .collect()
    }

    fn names<T: IntoParams>() -> Vec<String> {
        documented::<T>().into_iter().map(|(n, _)| n).collect()
    }

    fn query(pairs: &[(&str, &str)]) -> Query {
        let raw: String = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        Query::parse(Some(&raw)).unwrap()
    }

    #[test]
    fn each_query_type_reads_every_parameter_it_documents() {
        let given = [
            ("returnFaceId", "false"),
            ("returnFaceLandmarks", "true"),
            ("returnFaceAttributes", "age,noise"),
            ("recognitionModel", "recognition_03"),
            ("returnRecognitionModel", "true"),
            ("detectionModel", "detection_02"),
            ("faceIdTimeToLive", "60"),
        ];
        assert_eq!(names::<DetectQuery>(), given.map(|(n, _)| n));
        let d = DetectQuery::read(&query(&given)).unwrap();
        assert!(!d.return_face_id && d.return_face_landmarks && d.return_recognition_model);
        assert_eq!(d.return_face_attributes, ["age", "noise"]);
        assert_eq!(
            (d.recognition_model, d.detection_model, d.face_id_time_to_live),
            ("recognition_03", "detection_02", 60)
        );

        let given = [("userData", "u"), ("targetFace", "1,2,3,4"), ("detectionModel", "detection_02")];
        assert_eq!(names::<AddFaceQuery>(), given.map(|(n, _)| n));
        let a = AddFaceQuery::read(&query(&given)).unwrap();
        assert_eq!(
            (a.user_data.as_deref(), a.target_face, a.detection_model),
            (Some("u"), Some([1, 2, 3, 4]), "detection_02")
        );

        let given = [("returnRecognitionModel", "true")];
        assert_eq!(names::<CollectionQuery>(), given.map(|(n, _)| n));
        assert!(CollectionQuery::read(&query(&given)).unwrap().return_recognition_model);

        let given = [("start", "b"), ("top", "7")];
        assert_eq!(names::<ListQuery>(), given.map(|(n, _)| n));
        let l = ListQuery::read(&query(&given)).unwrap();
        assert_eq!((l.start.as_deref(), l.top), (Some("b"), 7));

        let scope = "00000000-0000-4000-8000-000000000001";
        let given = [("type", "FaceList"), ("applyScope", scope)];
        assert_eq!(names::<SnapshotListQuery>(), given.map(|(n, _)| n));
        let s = SnapshotListQuery::read(&query(&given)).unwrap();
        assert_eq!((s.kind, s.apply_scope), (Some(crate::store::Kind::FaceList), vec![scope.to_owned()]));
    }

    #[test]
    fn the_documented_defaults_are_the_ones_read() {
        let default_of =
            |docs: &[(String, Value)], name: &str| docs.iter().find(|(n, _)| n == name).unwrap().1["default"].clone();
        let docs = documented::<DetectQuery>();
        let d = DetectQuery::read(&query(&[])).unwrap();
        assert_eq!(default_of(&docs, "returnFaceId"), Value::Bool(d.return_face_id));
        assert_eq!(default_of(&docs, "returnFaceLandmarks"), Value::Bool(d.return_face_landmarks));
        assert_eq!(default_of(&docs, "returnRecognitionModel"), Value::Bool(d.return_recognition_model));
        assert_eq!(d.face_id_time_to_live, FACE_ID_TTL.0, "faceIdTimeToLive's documented default");
        let c = CollectionQuery::read(&query(&[])).unwrap();
        assert_eq!(
            default_of(&documented::<CollectionQuery>(), "returnRecognitionModel"),
            Value::Bool(c.return_recognition_model)
        );
        assert_eq!(ListQuery::read(&query(&[])).unwrap().top, 1000, "top's documented default");
    }

    #[test]
    fn the_documented_limits_are_the_ones_checked() {
        let (_, min_ttl, max_ttl) = FACE_ID_TTL;
        let docs = documented::<DetectQuery>();
        let ttl = &docs.iter().find(|(n, _)| n == "faceIdTimeToLive").unwrap().1;
        assert_eq!((ttl["minimum"].as_u64(), ttl["maximum"].as_u64()), (Some(min_ttl), Some(max_ttl)));
        for (value, ok) in [(min_ttl - 1, false), (min_ttl, true), (max_ttl, true), (max_ttl + 1, false)] {
            let read = DetectQuery::read(&query(&[("faceIdTimeToLive", &value.to_string())]));
            assert_eq!(read.is_ok(), ok, "faceIdTimeToLive={value}");
        }
        let docs = documented::<ListQuery>();
        let top = &docs.iter().find(|(n, _)| n == "top").unwrap().1;
        assert_eq!((top["minimum"].as_u64(), top["maximum"].as_u64()), (Some(1), Some(1000)));
        for (value, ok) in [(0, false), (1, true), (1000, true), (1001, false)] {
            assert_eq!(ListQuery::read(&query(&[("top", &value.to_string())])).is_ok(), ok, "top={value}");
        }
    }
}
