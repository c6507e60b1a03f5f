//! The OpenAPI schemas of every served kind, generated once from the Rust types
//! (k8s-openapi's and Wharf's own), keyed by definition name. OpenAPI documents, strict field
//! validation and strategic merge patch all walk these.

use std::sync::LazyLock;

use k8s_openapi::api::{apps, authentication, authorization, batch, coordination, core, discovery, events, node, rbac};
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

/// Where `$ref`s point: `#/components/schemas/NAME`.
pub const REF_PREFIX: &str = "#/components/schemas/";

static DEFINITIONS: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let mut generator = SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<core::v1::Namespace>();
    generator.subschema_for::<core::v1::Node>();
    generator.subschema_for::<core::v1::Pod>();
    generator.subschema_for::<core::v1::Service>();
    generator.subschema_for::<core::v1::Endpoints>();
    generator.subschema_for::<core::v1::ConfigMap>();
    generator.subschema_for::<core::v1::Secret>();
    generator.subschema_for::<core::v1::Event>();
    generator.subschema_for::<core::v1::ServiceAccount>();
    generator.subschema_for::<core::v1::Binding>();
    generator.subschema_for::<k8s_openapi::api::policy::v1::Eviction>();
    generator.subschema_for::<apps::v1::Deployment>();
    generator.subschema_for::<apps::v1::ReplicaSet>();
    generator.subschema_for::<apps::v1::DaemonSet>();
    generator.subschema_for::<apps::v1::StatefulSet>();
    generator.subschema_for::<batch::v1::Job>();
    generator.subschema_for::<batch::v1::CronJob>();
    generator.subschema_for::<coordination::v1::Lease>();
    generator.subschema_for::<discovery::v1::EndpointSlice>();
    generator.subschema_for::<events::v1::Event>();
    generator.subschema_for::<node::v1::RuntimeClass>();
    generator.subschema_for::<core::v1::ResourceQuota>();
    generator.subschema_for::<core::v1::LimitRange>();
    generator.subschema_for::<rbac::v1::Role>();
    generator.subschema_for::<rbac::v1::ClusterRole>();
    generator.subschema_for::<rbac::v1::RoleBinding>();
    generator.subschema_for::<rbac::v1::ClusterRoleBinding>();
    generator.subschema_for::<authorization::v1::SelfSubjectAccessReview>();
    generator.subschema_for::<authorization::v1::SelfSubjectRulesReview>();
    generator.subschema_for::<authorization::v1::SubjectAccessReview>();
    generator.subschema_for::<authorization::v1::LocalSubjectAccessReview>();
    generator.subschema_for::<authentication::v1::TokenReview>();
    generator.subschema_for::<authentication::v1::SelfSubjectReview>();
    generator.subschema_for::<authentication::v1::TokenRequest>();
    generator.subschema_for::<k8s_openapi::api::autoscaling::v1::Scale>();
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>();
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>();
    generator.subschema_for::<super::function::Function>();
    generator.take_definitions(true)
});

/// All definitions, by name (`io.k8s.api.core.v1.Pod`).
pub fn definitions() -> &'static Map<String, Value> {
    &DEFINITIONS
}

/// The definition named `name`.
pub fn definition(name: &str) -> Option<&'static Value> {
    DEFINITIONS.get(name)
}

/// The `$ref` target named by a schema: directly, or wrapped the way schemars writes described
/// or optional references (`allOf: [{$ref}]`, `anyOf: [{$ref}, {type: null}]`).
fn reference(schema: &Value) -> Option<&str> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.strip_prefix(REF_PREFIX);
    }
    ["allOf", "anyOf", "oneOf"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(Value::as_array))
        .flatten()
        .find_map(|s| s.get("$ref").and_then(Value::as_str))
        .and_then(|r| r.strip_prefix(REF_PREFIX))
}

/// Follows a `$ref` (if the schema is one) to its definition's name and schema.
pub fn resolve(schema: &'static Value) -> (Option<&'static str>, &'static Value) {
    match reference(schema).and_then(|name| DEFINITIONS.get_key_value(name)) {
        Some((key, def)) => (Some(key.as_str()), def),
        None => (None, schema),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::kinds::RESOURCES;

    #[test]
    fn every_kind_has_a_definition() {
        for r in RESOURCES {
            assert!(definition(r.definition).is_some(), "no schema for {}", r.definition);
        }
    }

    #[test]
    fn references_resolve_to_definitions() {
        let pod_spec = &definition("io.k8s.api.core.v1.Pod").unwrap()["properties"]["spec"];
        let (name, schema) = resolve(pod_spec);
        assert_eq!(name, Some("io.k8s.api.core.v1.PodSpec"));
        assert!(schema["properties"]["containers"].is_object());
    }
}
