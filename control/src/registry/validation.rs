//! STUB until the validation module lands.
use crate::Cause;
use crate::registry::kinds::ResourceInfo;
use serde_json::Value;
pub fn validate(_r: &ResourceInfo, _obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
    Vec::new()
}
