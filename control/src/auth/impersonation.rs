//! Impersonation (`kubectl --as`, `--as-group`): `Impersonate-*` headers make a request act as
//! another user, when the requester may `impersonate` them.

use axum::http::HeaderMap;

use super::User;
use super::authz::Authorizer;
use crate::error::Result;

/// The user a request acts as: `user` itself without `Impersonate-*` headers.
pub fn apply(_authorizer: &Authorizer, user: User, _headers: &HeaderMap) -> Result<User> {
    Ok(user)
}
