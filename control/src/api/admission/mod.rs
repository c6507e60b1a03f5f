//! Admission: the plugins every write passes after authorization, in kube-apiserver's order.
//! [`mutate`] runs after defaulting and may change the object; the object is then validated;
//! [`validate`] runs last and may only refuse. Each plugin is its own module.

mod limit_range;
pub(crate) mod namespace_lifecycle;
pub(crate) mod node_restriction;
mod pod_security;
mod resource_quota;
mod service_account;
mod tolerations;

use serde_json::Value;

use super::ApiState;
use crate::auth::User;
use crate::error::Result;
use crate::registry::kinds::{ResourceInfo, Subresource};

/// What is being done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// One write as admission sees it.
pub struct Request<'a> {
    pub user: &'a User,
    pub operation: Operation,
    pub resource: &'static ResourceInfo,
    pub subresource: Option<Subresource>,
    /// Empty for cluster-scoped objects.
    pub namespace: &'a str,
    pub name: &'a str,
    /// A dry run must not charge quota or change anything else.
    pub dry_run: bool,
}

impl Request<'_> {
    /// Whether this is a write of `group`/`kind` itself (not a subresource of it).
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.resource.group == group && self.resource.kind == kind && self.subresource.is_none()
    }
}

/// The mutating plugins, on a create or update after defaulting. Returns warnings for the client
/// (plugins push plain text; they leave here as `Warning` header values).
pub async fn mutate(
    state: &ApiState,
    request: &Request<'_>,
    object: &mut Value,
    old: Option<&Value>,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if request.is("", "Pod") && request.operation == Operation::Create {
        tolerations::default_tolerations(object, &state.admission);
        super::runtime_class::admit_pod(&state.store, object)?;
    }
    service_account::mutate(state, request, object)?;
    limit_range::mutate(state, request, object, old, &mut warnings)?;
    Ok(headers(warnings))
}

/// The validating plugins, after the object passed validation; for a delete `object` is the
/// stored one. Returns warnings for the client.
pub async fn validate(
    state: &ApiState,
    request: &Request<'_>,
    object: &Value,
    old: Option<&Value>,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    namespace_lifecycle::validate(request)?;
    node_restriction::validate(state, request, object, old)?;
    if request.is("", "Secret") && request.operation != Operation::Delete {
        crate::auth::tokens::check_token_secret_write(request.user, request.namespace, object, old)?;
    }
    crate::auth::rbac::confirm_no_escalation(&state.authz, request, object, old)?;
    pod_security::validate(state, request, object, old, &mut warnings)?;
    limit_range::validate(state, request, object, old)?;
    resource_quota::validate(state, request, object, old).await?;
    Ok(headers(warnings))
}

/// The plugins' warnings (plain text) as `Warning` header values.
fn headers(warnings: Vec<String>) -> Vec<String> {
    warnings.iter().map(|w| crate::registry::fields::warning(w)).collect()
}
