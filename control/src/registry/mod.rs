//! Per-kind behaviour: the resource table, defaults, validation, table columns, field
//! selectors and patch strategies.

pub mod function;
pub mod kinds;
pub mod patch_strategy;
pub mod schema;
