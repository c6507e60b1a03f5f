//! The OpenAPI schemas of every served kind, generated once from the Rust types
//! (k8s-openapi's and Wharf's own), keyed by definition name. OpenAPI documents, strict field
//! validation and strategic merge patch all walk these; the API decodes every body as the same
//! types ([`decode`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use k8s_openapi::api::{apps, authentication, authorization, batch, coordination, core, discovery, events, node, rbac};
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Where `$ref`s point: `#/components/schemas/NAME`.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// A served type: its schema, and a check that a JSON object decodes as it.
struct Served {
    name: fn() -> Cow<'static, str>,
    add_schema: fn(&mut SchemaGenerator),
    decode: fn(&Value) -> Result<(), serde_path_to_error::Error<serde_json::Error>>,
}

fn served<T: JsonSchema + DeserializeOwned>() -> Served {
    Served {
        name: T::schema_name,
        add_schema: |generator| {
            generator.subschema_for::<T>();
        },
        decode: |object| serde_path_to_error::deserialize::<_, T>(object).map(drop),
    }
}

/// Every type the API serves, by definition name (`io.k8s.api.core.v1.Pod`).
static SERVED: LazyLock<HashMap<String, Served>> = LazyLock::new(|| {
    let served = [
        served::<core::v1::Namespace>(),
        served::<core::v1::Node>(),
        served::<core::v1::Pod>(),
        served::<core::v1::Service>(),
        served::<core::v1::Endpoints>(),
        served::<core::v1::ConfigMap>(),
        served::<core::v1::Secret>(),
        served::<core::v1::Event>(),
        served::<core::v1::ServiceAccount>(),
        served::<core::v1::Binding>(),
        served::<k8s_openapi::api::policy::v1::Eviction>(),
        served::<apps::v1::Deployment>(),
        served::<apps::v1::ReplicaSet>(),
        served::<apps::v1::DaemonSet>(),
        served::<apps::v1::StatefulSet>(),
        served::<batch::v1::Job>(),
        served::<batch::v1::CronJob>(),
        served::<coordination::v1::Lease>(),
        served::<discovery::v1::EndpointSlice>(),
        served::<events::v1::Event>(),
        served::<node::v1::RuntimeClass>(),
        served::<core::v1::ResourceQuota>(),
        served::<core::v1::LimitRange>(),
        served::<rbac::v1::Role>(),
        served::<rbac::v1::ClusterRole>(),
        served::<rbac::v1::RoleBinding>(),
        served::<rbac::v1::ClusterRoleBinding>(),
        served::<authorization::v1::SelfSubjectAccessReview>(),
        served::<authorization::v1::SelfSubjectRulesReview>(),
        served::<authorization::v1::SubjectAccessReview>(),
        served::<authorization::v1::LocalSubjectAccessReview>(),
        served::<authentication::v1::TokenReview>(),
        served::<authentication::v1::SelfSubjectReview>(),
        served::<authentication::v1::TokenRequest>(),
        served::<k8s_openapi::api::autoscaling::v1::Scale>(),
        served::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>(),
        served::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>(),
        served::<super::function::Function>(),
    ];
    served.into_iter().map(|s| ((s.name)().into_owned(), s)).collect()
});

static DEFINITIONS: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let mut generator = SchemaSettings::openapi3().into_generator();
    for served in SERVED.values() {
        (served.add_schema)(&mut generator);
    }
    generator.take_definitions(true)
});

/// Where a JSON object fails to decode as the served type `definition` (the Rust type the
/// controllers, agents and clients read it as), with the path of the field in the way; `Ok`
/// for a definition that is no served type.
pub fn decode(definition: &str, object: &Value) -> Result<(), serde_path_to_error::Error<serde_json::Error>> {
    SERVED.get(definition).map_or(Ok(()), |served| (served.decode)(object))
}

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
