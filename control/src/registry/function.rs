//! `wharf.dev/v1` Function: a serverless-style workload routed by the gateway. Stored and
//! served like a built-in kind; its controller and gateway come with the functions issue.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Function runs a WebAssembly component or a Linux image behind the HTTP gateway and scales it
/// with its load, down to zero.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.wharf.v1.Function")]
pub struct Function {
    /// APIVersion defines the versioned schema of this representation of an object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind is a string value representing the REST resource this object represents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard object's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to run and how to route and scale it.
    #[serde(default)]
    pub spec: FunctionSpec,
    /// Observed state, written by the function controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<FunctionStatus>,
}

/// FunctionSpec is what to run and how to route and scale it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.wharf.v1.FunctionSpec")]
pub struct FunctionSpec {
    /// Image reference: a Wasm component artifact or a Linux OCI image.
    pub image: String,
    /// Entrypoint override.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Port a Linux-image function listens on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Where the gateway routes requests from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<FunctionRoute>,
    /// Scaling bounds and targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<FunctionScale>,
    /// Environment variables of the function.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Compute resources of each instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Forces a runtime handler (`wasmtime` or `youki`); otherwise the image decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
}

/// FunctionRoute says which requests reach the function.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.wharf.v1.FunctionRoute")]
pub struct FunctionRoute {
    /// URL path prefix, starting with `/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Host header to match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// FunctionScale bounds the number of instances and says when to add or remove them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.wharf.v1.FunctionScale")]
pub struct FunctionScale {
    /// Fewest instances; 0 lets the function scale to zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    /// Most instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i32>,
    /// Concurrent requests per instance the autoscaler aims for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_concurrency: Option<i32>,
    /// Idle time before scaling down to the minimum, as a duration such as `60s` or `5m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
}

/// FunctionStatus is the observed state of a Function.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.wharf.v1.FunctionStatus")]
pub struct FunctionStatus {
    /// URL the function answers on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Current number of instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Instances ready to serve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Conditions of the function, such as Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Requests served since the function was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invocations: Option<i64>,
}
