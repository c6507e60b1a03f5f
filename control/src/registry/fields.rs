//! STUB until the fields module lands.
use crate::Error;
use serde_json::Value;
pub fn parse_json(body: &[u8]) -> Result<(Value, Vec<String>), Error> {
    Ok((serde_json::from_slice(body).map_err(|e| Error::BadRequest(e.to_string()))?, Vec::new()))
}
pub fn unknown_fields(_d: &str, _obj: &Value) -> Vec<String> {
    Vec::new()
}
pub fn strict_error(unknown: &[String], duplicates: &[String]) -> Error {
    Error::BadRequest(format!("{unknown:?}{duplicates:?}"))
}
pub fn warnings(_u: &[String], _d: &[String]) -> Vec<String> {
    Vec::new()
}
