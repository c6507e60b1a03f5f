//! STUB until the openapi module lands.
use serde_json::{Value, json};
use std::sync::LazyLock;
static EMPTY: LazyLock<Value> = LazyLock::new(|| json!({"paths": {}}));
pub fn index() -> &'static Value {
    &EMPTY
}
pub fn document(_gv: &str) -> Option<&'static (Value, String)> {
    None
}
