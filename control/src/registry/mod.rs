//! Per-kind behaviour: the resource table, defaults, validation, table columns, field
//! selectors and patch strategies.

pub mod kinds;
pub mod function;
pub mod patch_strategy;
pub mod schema;
