//! The operation table: each of the 69 Face v1.0 operations declared once, with its spec
//! operationId, method, route, success status and handler. The router ([`face_api`]), the
//! OpenAPI document and `/swagger` all come from it, and a test checks it against Face.json.
//!
//! The four collection kinds are types ([`PersonGroups`], ...): a handler serves a kind by
//! being instantiated for it, so an operation a kind lacks has no route at all.

use std::collections::BTreeMap;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter};

use super::Shared;
use super::collections::{self as c, FaceLists, LargeFaceLists, LargePersonGroups, PersonGroups};
use super::{detect, face, persisted_faces as f, persons as p, snapshots as s, training as t};

/// One operation: the spec's operationId, method, route (with `?overload=` where the spec tells
/// two bodies apart on one route) and success status.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub id: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub status: u16,
}

impl Operation {
    /// The route without its `?overload=` part, in the router's `{param}` syntax (the spec's).
    pub fn route(&self) -> &'static str {
        self.path.split('?').next().unwrap_or(self.path)
    }

    /// The spec's tag: the operationId before `_`.
    pub fn tag(&self) -> &'static str {
        self.id.split('_').next().unwrap_or("Face")
    }

    /// Whether the operation takes image bytes (`stream`) or an image URL (`url`).
    pub fn image(&self) -> Option<&'static str> {
        if self.id.ends_with("FromStream") || self.id == "Face_DetectWithStream" {
            Some("stream")
        } else if self.id.ends_with("FromUrl") || self.id == "Face_DetectWithUrl" {
            Some("url")
        } else {
            None
        }
    }
}

/// The routes being assembled: one method router per route.
#[derive(Default)]
struct Table(BTreeMap<&'static str, MethodRouter<Shared>>);

impl Table {
    fn add<H: Handler<T, Shared>, T: 'static>(&mut self, method: &str, path: &'static str, handler: H) {
        let filter = match method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "PATCH" => MethodFilter::PATCH,
            "DELETE" => MethodFilter::DELETE,
            other => unreachable!("the operation table has no {other} operation"),
        };
        let route = path.split('?').next().unwrap_or(path);
        let methods = self.0.remove(route).unwrap_or_default();
        self.0.insert(route, methods.on(filter, handler));
    }
}

/// Registers a row that names a handler; a row without one is an overload served by the handler
/// of the row with the same method and route.
macro_rules! add {
    ($table:ident, $method:ident, $path:literal) => {};
    ($table:ident, $method:ident, $path:literal, $handler:expr) => {
        $table.add(stringify!($method), $path, $handler)
    };
}

macro_rules! operations {
    ($( $id:ident $method:ident $path:literal $status:literal $(=> $handler:expr)? ;)*) => {
        /// The 69 operations of Face v1.0, in the spec's order of operationIds.
        pub const OPERATIONS: &[Operation] = &[
            $( Operation { id: stringify!($id), method: stringify!($method), path: $path, status: $status } ),*
        ];

        /// The Face API's routes (under `/face/v1.0`), one per row of [`OPERATIONS`].
        pub fn face_api() -> Router<Shared> {
            let mut table = Table::default();
            $( add!(table, $method, $path $(, $handler)?); )*
            table.0.into_iter().fold(Router::new(), |router, (route, methods)| router.route(route, methods))
        }
    };
}

operations! {
    FaceList_AddFaceFromStream POST "/facelists/{faceListId}/persistedfaces?overload=stream" 200;
    FaceList_AddFaceFromUrl POST "/facelists/{faceListId}/persistedfaces" 200 => f::add::<FaceLists>;
    FaceList_Create PUT "/facelists/{faceListId}" 200 => c::create::<FaceLists>;
    FaceList_Delete DELETE "/facelists/{faceListId}" 200 => c::delete::<FaceLists>;
    FaceList_DeleteFace DELETE "/facelists/{faceListId}/persistedfaces/{persistedFaceId}" 200
        => f::delete::<FaceLists>;
    FaceList_Get GET "/facelists/{faceListId}" 200 => c::get::<FaceLists>;
    FaceList_List GET "/facelists" 200 => c::list::<FaceLists>;
    FaceList_Update PATCH "/facelists/{faceListId}" 200 => c::update::<FaceLists>;
    Face_DetectWithStream POST "/detect?overload=stream" 200;
    Face_DetectWithUrl POST "/detect" 200 => detect::detect;
    Face_FindSimilar POST "/findsimilars" 200 => face::find_similar;
    Face_Group POST "/group" 200 => face::group;
    Face_Identify POST "/identify" 200 => face::identify;
    Face_VerifyFaceToFace POST "/verify" 200 => face::verify;
    Face_VerifyFaceToPerson POST "/verify?overload=person" 200;
    LargeFaceList_AddFaceFromStream POST "/largefacelists/{largeFaceListId}/persistedfaces?overload=stream" 200;
    LargeFaceList_AddFaceFromUrl POST "/largefacelists/{largeFaceListId}/persistedfaces" 200
        => f::add::<LargeFaceLists>;
    LargeFaceList_Create PUT "/largefacelists/{largeFaceListId}" 200 => c::create::<LargeFaceLists>;
    LargeFaceList_Delete DELETE "/largefacelists/{largeFaceListId}" 200 => c::delete::<LargeFaceLists>;
    LargeFaceList_DeleteFace DELETE "/largefacelists/{largeFaceListId}/persistedfaces/{persistedFaceId}" 200
        => f::delete::<LargeFaceLists>;
    LargeFaceList_Get GET "/largefacelists/{largeFaceListId}" 200 => c::get::<LargeFaceLists>;
    LargeFaceList_GetFace GET "/largefacelists/{largeFaceListId}/persistedfaces/{persistedFaceId}" 200
        => f::get::<LargeFaceLists>;
    LargeFaceList_GetTrainingStatus GET "/largefacelists/{largeFaceListId}/training" 200
        => t::status::<LargeFaceLists>;
    LargeFaceList_List GET "/largefacelists" 200 => c::list::<LargeFaceLists>;
    LargeFaceList_ListFaces GET "/largefacelists/{largeFaceListId}/persistedfaces" 200
        => f::list::<LargeFaceLists>;
    LargeFaceList_Train POST "/largefacelists/{largeFaceListId}/train" 202 => t::train::<LargeFaceLists>;
    LargeFaceList_Update PATCH "/largefacelists/{largeFaceListId}" 200 => c::update::<LargeFaceLists>;
    LargeFaceList_UpdateFace PATCH "/largefacelists/{largeFaceListId}/persistedfaces/{persistedFaceId}" 200
        => f::update::<LargeFaceLists>;
    LargePersonGroupPerson_AddFaceFromStream POST
        "/largepersongroups/{largePersonGroupId}/persons/{personId}/persistedfaces?overload=stream" 200;
    LargePersonGroupPerson_AddFaceFromUrl POST
        "/largepersongroups/{largePersonGroupId}/persons/{personId}/persistedfaces" 200
        => f::add::<LargePersonGroups>;
    LargePersonGroupPerson_Create POST "/largepersongroups/{largePersonGroupId}/persons" 200
        => p::create::<LargePersonGroups>;
    LargePersonGroupPerson_Delete DELETE "/largepersongroups/{largePersonGroupId}/persons/{personId}" 200
        => p::delete::<LargePersonGroups>;
    LargePersonGroupPerson_DeleteFace DELETE
        "/largepersongroups/{largePersonGroupId}/persons/{personId}/persistedfaces/{persistedFaceId}" 200
        => f::delete::<LargePersonGroups>;
    LargePersonGroupPerson_Get GET "/largepersongroups/{largePersonGroupId}/persons/{personId}" 200
        => p::get::<LargePersonGroups>;
    LargePersonGroupPerson_GetFace GET
        "/largepersongroups/{largePersonGroupId}/persons/{personId}/persistedfaces/{persistedFaceId}" 200
        => f::get::<LargePersonGroups>;
    LargePersonGroupPerson_List GET "/largepersongroups/{largePersonGroupId}/persons" 200
        => p::list::<LargePersonGroups>;
    LargePersonGroupPerson_Update PATCH "/largepersongroups/{largePersonGroupId}/persons/{personId}" 200
        => p::update::<LargePersonGroups>;
    LargePersonGroupPerson_UpdateFace PATCH
        "/largepersongroups/{largePersonGroupId}/persons/{personId}/persistedfaces/{persistedFaceId}" 200
        => f::update::<LargePersonGroups>;
    LargePersonGroup_Create PUT "/largepersongroups/{largePersonGroupId}" 200 => c::create::<LargePersonGroups>;
    LargePersonGroup_Delete DELETE "/largepersongroups/{largePersonGroupId}" 200 => c::delete::<LargePersonGroups>;
    LargePersonGroup_Get GET "/largepersongroups/{largePersonGroupId}" 200 => c::get::<LargePersonGroups>;
    LargePersonGroup_GetTrainingStatus GET "/largepersongroups/{largePersonGroupId}/training" 200
        => t::status::<LargePersonGroups>;
    LargePersonGroup_List GET "/largepersongroups" 200 => c::list::<LargePersonGroups>;
    LargePersonGroup_Train POST "/largepersongroups/{largePersonGroupId}/train" 202
        => t::train::<LargePersonGroups>;
    LargePersonGroup_Update PATCH "/largepersongroups/{largePersonGroupId}" 200 => c::update::<LargePersonGroups>;
    PersonGroupPerson_AddFaceFromStream POST
        "/persongroups/{personGroupId}/persons/{personId}/persistedfaces?overload=stream" 200;
    PersonGroupPerson_AddFaceFromUrl POST "/persongroups/{personGroupId}/persons/{personId}/persistedfaces" 200
        => f::add::<PersonGroups>;
    PersonGroupPerson_Create POST "/persongroups/{personGroupId}/persons" 200 => p::create::<PersonGroups>;
    PersonGroupPerson_Delete DELETE "/persongroups/{personGroupId}/persons/{personId}" 200
        => p::delete::<PersonGroups>;
    PersonGroupPerson_DeleteFace DELETE
        "/persongroups/{personGroupId}/persons/{personId}/persistedfaces/{persistedFaceId}" 200
        => f::delete::<PersonGroups>;
    PersonGroupPerson_Get GET "/persongroups/{personGroupId}/persons/{personId}" 200 => p::get::<PersonGroups>;
    PersonGroupPerson_GetFace GET
        "/persongroups/{personGroupId}/persons/{personId}/persistedfaces/{persistedFaceId}" 200
        => f::get::<PersonGroups>;
    PersonGroupPerson_List GET "/persongroups/{personGroupId}/persons" 200 => p::list::<PersonGroups>;
    PersonGroupPerson_Update PATCH "/persongroups/{personGroupId}/persons/{personId}" 200
        => p::update::<PersonGroups>;
    PersonGroupPerson_UpdateFace PATCH
        "/persongroups/{personGroupId}/persons/{personId}/persistedfaces/{persistedFaceId}" 200
        => f::update::<PersonGroups>;
    PersonGroup_Create PUT "/persongroups/{personGroupId}" 200 => c::create::<PersonGroups>;
    PersonGroup_Delete DELETE "/persongroups/{personGroupId}" 200 => c::delete::<PersonGroups>;
    PersonGroup_Get GET "/persongroups/{personGroupId}" 200 => c::get::<PersonGroups>;
    PersonGroup_GetTrainingStatus GET "/persongroups/{personGroupId}/training" 200 => t::status::<PersonGroups>;
    PersonGroup_List GET "/persongroups" 200 => c::list::<PersonGroups>;
    PersonGroup_Train POST "/persongroups/{personGroupId}/train" 202 => t::train::<PersonGroups>;
    PersonGroup_Update PATCH "/persongroups/{personGroupId}" 200 => c::update::<PersonGroups>;
    Snapshot_Apply POST "/snapshots/{snapshotId}/apply" 202 => s::apply;
    Snapshot_Delete DELETE "/snapshots/{snapshotId}" 200 => s::delete;
    Snapshot_Get GET "/snapshots/{snapshotId}" 200 => s::get;
    Snapshot_GetOperationStatus GET "/operations/{operationId}" 200 => s::operation;
    Snapshot_List GET "/snapshots" 200 => s::list;
    Snapshot_Take POST "/snapshots" 202 => s::take;
    Snapshot_Update PATCH "/snapshots/{snapshotId}" 200 => s::update;
}
