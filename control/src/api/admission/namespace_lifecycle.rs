//! NamespaceLifecycle: nothing new is created in a namespace that does not exist or is being
//! deleted, and the namespaces the cluster itself lives in (`default`, `kube-system`,
//! `kube-public`) may not be deleted, as in kube-apiserver. Without the last, one
//! `kubectl delete namespaces --all` would take the leader's Lease and the cluster's tokens with it.

use super::{Operation, Request};
use crate::api::ApiState;
use crate::error::{Error, Result};
use crate::store::ObjectKey;

/// The namespaces that may not be deleted.
const IMMORTAL: [&str; 3] = ["default", "kube-system", "kube-public"];

/// The namespace an object is created in must exist and not be terminating.
pub(crate) fn ensure_open(state: &ApiState, namespace: &str) -> Result<()> {
    let ns = state.store.get(&ObjectKey::new("namespaces", "", namespace)).ok_or_else(|| Error::NotFound {
        group: String::new(),
        kind: "namespaces".into(),
        name: namespace.into(),
    })?;
    if ns.object["metadata"].get("deletionTimestamp").is_some() {
        return Err(Error::Forbidden(format!(
            "unable to create new content in namespace {namespace} because it is being terminated"
        )));
    }
    Ok(())
}

/// Refuses deleting one of the [`IMMORTAL`] namespaces.
pub(super) fn validate(request: &Request<'_>) -> Result<()> {
    if request.operation == Operation::Delete && request.is("", "Namespace") && IMMORTAL.contains(&request.name) {
        return Err(Error::Forbidden(format!(
            "namespaces {:?} is forbidden: this namespace may not be deleted",
            request.name
        )));
    }
    Ok(())
}
