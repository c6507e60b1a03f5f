//! TokenRequest (`serviceaccounts/{name}/token`, `kubectl create token`): a signed token of a
//! ServiceAccount, optionally bound to a pod and with the expiry asked for.

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
