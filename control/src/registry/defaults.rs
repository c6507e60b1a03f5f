//! STUB until the defaults module lands.
use crate::registry::kinds::ResourceInfo;
pub fn apply(_r: &ResourceInfo, _obj: &mut serde_json::Value) {}
