//! Shared pieces of Wharf's fuzz targets: picking a kind from a fuzzed byte and preparing a
//! decoded object the way the API server does before defaulting and validation.

use serde_json::{Value, json};
use wharf_control::registry::kinds::{RESOURCES, ResourceInfo};
use wharf_control::registry::{defaults, quota, strategy, validation};

/// The kinds the targets exercise, picked by one fuzzed byte.
pub fn kind(byte: u8) -> &'static ResourceInfo {
    &RESOURCES[byte as usize % RESOURCES.len()]
}

/// Places a decoded body as `create` does (metadata an object, the namespace of the request,
/// apiVersion and kind of the resource), then runs the create strategy, defaulting and the
/// per-kind validation, the quota evaluator, and validates the result as an update of itself.
pub fn default_and_validate(resource: &ResourceInfo, mut object: Value) {
    if !object.is_object() {
        return;
    }
    if object.get("apiVersion").and_then(Value::as_str).is_none() {
        object["apiVersion"] = resource.api_version().into();
    }
    if object.get("kind").and_then(Value::as_str).is_none() {
        object["kind"] = resource.kind.into();
    }
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    if resource.namespaced {
        object["metadata"]["namespace"] = "default".into();
    } else if let Some(meta) = object["metadata"].as_object_mut() {
        meta.remove("namespace");
    }
    let _ = wharf_control::registry::fields::unknown_fields(resource.definition, &object);
    strategy::prepare_create(resource, &mut object);
    defaults::apply(resource, &mut object);
    let _ = validation::validate(resource, &object, None);
    // What the object counts against quotas, and whether it were itself a quota that covers it.
    let usage = quota::usage(resource, &object, jiff::Timestamp::UNIX_EPOCH);
    let _ = quota::to_json(&usage);
    let _ = quota::in_scope(&object, resource, &object);
    let _ = quota::to_json(&quota::list(&object["spec"]["hard"]));
    let mut updated = object.clone();
    strategy::prepare_update(resource, &mut updated, &object, None);
    let _ = validation::validate(resource, &updated, Some(&object));
}
