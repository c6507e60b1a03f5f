//! The ServiceAccount plugin: a pod runs as a ServiceAccount (`default` unless it names one)
//! that must exist, and gets its token mounted unless it opts out.

use serde_json::Value;

use super::Request;
use crate::api::ApiState;
use crate::error::Result;

pub fn mutate(_state: &ApiState, _request: &Request<'_>, _object: &mut Value) -> Result<()> {
    Ok(())
}
