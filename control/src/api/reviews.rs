//! The reviews: SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview and
//! LocalSubjectAccessReview (`kubectl auth can-i`), TokenReview and SelfSubjectReview
//! (`kubectl auth whoami`). Each is answered from the request, never stored.

use axum::http::HeaderMap;
use axum::response::Response;

use super::ApiState;
use super::request::{Query, Target};
use crate::auth::User;
use crate::error::{Error, Result};

pub async fn create(
    _state: &ApiState,
    _user: &User,
    _target: &Target,
    _query: &Query,
    _headers: &HeaderMap,
    _body: &[u8],
) -> Result<Response> {
    Err(Error::MethodNotAllowed)
}
