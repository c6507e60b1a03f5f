//! `POST .../pods/NAME/eviction`: a policy/v1 Eviction deletes the pod with the Eviction's
//! deleteOptions, as kube-apiserver's eviction subresource does. Wharf has no
//! PodDisruptionBudgets, so an eviction is never refused for the sake of one (no 429).

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::ApiState;
use super::output;
use super::request::{Query, Target};
use super::resources::{self, Decoded};
use crate::auth::User;
use crate::error::{Error, Result};

pub(super) async fn evict(
    state: &ApiState,
    user: &User,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response> {
    let Decoded { object: eviction, .. } = resources::decoded(state, target, query, headers, body)?;
    let name = target.name.as_deref().unwrap_or_default();
    if eviction["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(Error::BadRequest("name in URL does not match name in Eviction object".into()));
    }
    let opts = resources::delete_options_from(&eviction["deleteOptions"], query)?;
    let pod = Target { subresource: None, ..target.clone() };
    resources::delete_one(state, user, &pod, name, &opts).await?;
    Ok(output::json(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        &[],
    ))
}
