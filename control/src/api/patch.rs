//! STUB until the patch module lands.
use crate::Error;
use serde_json::Value;
pub fn apply_merge_patch(t: &Value, p: &Value) -> Result<Value, Error> {
    let mut t = t.clone();
    json_patch::merge(&mut t, p);
    Ok(t)
}
pub fn apply_json_patch(t: &Value, p: &Value) -> Result<Value, Error> {
    let patch: json_patch::Patch = serde_json::from_value(p.clone()).map_err(|e| Error::BadRequest(e.to_string()))?;
    let mut t = t.clone();
    json_patch::patch(&mut t, &patch).map_err(|e| Error::BadRequest(e.to_string()))?;
    Ok(t)
}
pub fn apply_strategic_merge_patch(t: &Value, p: &Value, _d: &str) -> Result<Value, Error> {
    apply_merge_patch(t, p)
}
