//! Per-kind behaviour: the resource table, defaults, validation, table columns, field
//! selectors and patch strategies.

pub mod defaults;
pub mod fields;
pub mod function;
pub mod kinds;
pub mod patch_strategy;
pub mod quota;
pub mod rbac;
pub mod schema;
pub mod selector;
pub mod service_alloc;
pub mod strategy;
pub mod table;
pub mod validation;
pub mod well_known;
