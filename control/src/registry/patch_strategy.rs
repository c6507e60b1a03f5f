//! Kubernetes' strategic-merge-patch strategies per field, as the API types declare them
//! (`patchStrategy` / `patchMergeKey`). The patch engine and the OpenAPI documents both read
//! this one table.

/// How a field is patched when a strategic merge patch touches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldStrategy {
    /// The `x-kubernetes-patch-strategy` value: `merge`, `retainKeys` or `merge,retainKeys`.
    pub strategy: &'static str,
    /// The `x-kubernetes-patch-merge-key` of a list of objects; `None` for a list of scalars
    /// merged as a set, or for a map with `retainKeys`.
    pub merge_key: Option<&'static str>,
}

impl FieldStrategy {
    pub fn merges(&self) -> bool {
        self.strategy.split(',').any(|s| s == "merge")
    }

    pub fn retains_keys(&self) -> bool {
        self.strategy.split(',').any(|s| s == "retainKeys")
    }
}

const fn merge(key: &'static str) -> FieldStrategy {
    FieldStrategy { strategy: "merge", merge_key: Some(key) }
}
const fn merge_retain(key: &'static str) -> FieldStrategy {
    FieldStrategy { strategy: "merge,retainKeys", merge_key: Some(key) }
}
const MERGE_SET: FieldStrategy = FieldStrategy { strategy: "merge", merge_key: None };
const RETAIN_KEYS: FieldStrategy = FieldStrategy { strategy: "retainKeys", merge_key: None };

/// (OpenAPI definition of the parent object, field name) → strategy. Fields not listed are
/// replaced whole (lists) or merged recursively (maps), as Kubernetes does.
static TABLE: &[(&str, &str, FieldStrategy)] = &[
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", MERGE_SET),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", merge("uid")),
    ("io.k8s.api.core.v1.PodSpec", "containers", merge("name")),
    ("io.k8s.api.core.v1.PodSpec", "initContainers", merge("name")),
    ("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", merge("name")),
    ("io.k8s.api.core.v1.PodSpec", "volumes", merge_retain("name")),
    ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", merge("name")),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", merge("ip")),
    ("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints", merge("topologyKey")),
    ("io.k8s.api.core.v1.PodSpec", "resourceClaims", merge_retain("name")),
    ("io.k8s.api.core.v1.PodSpec", "schedulingGates", merge("name")),
    ("io.k8s.api.core.v1.Container", "ports", merge("containerPort")),
    ("io.k8s.api.core.v1.Container", "env", merge("name")),
    ("io.k8s.api.core.v1.Container", "volumeMounts", merge("mountPath")),
    ("io.k8s.api.core.v1.Container", "volumeDevices", merge("devicePath")),
    ("io.k8s.api.core.v1.EphemeralContainer", "ports", merge("containerPort")),
    ("io.k8s.api.core.v1.EphemeralContainer", "env", merge("name")),
    ("io.k8s.api.core.v1.EphemeralContainer", "volumeMounts", merge("mountPath")),
    ("io.k8s.api.core.v1.EphemeralContainer", "volumeDevices", merge("devicePath")),
    ("io.k8s.api.core.v1.PodStatus", "conditions", merge("type")),
    ("io.k8s.api.core.v1.PodStatus", "podIPs", merge("ip")),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs", merge("ip")),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", merge("port")),
    ("io.k8s.api.core.v1.ServiceStatus", "conditions", merge("type")),
    ("io.k8s.api.core.v1.ServiceAccount", "secrets", merge("name")),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", MERGE_SET),
    ("io.k8s.api.core.v1.NodeStatus", "conditions", merge("type")),
    ("io.k8s.api.core.v1.NodeStatus", "addresses", merge("type")),
    ("io.k8s.api.core.v1.NamespaceStatus", "conditions", merge("type")),
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy", RETAIN_KEYS),
    ("io.k8s.api.apps.v1.DeploymentStatus", "conditions", merge("type")),
    ("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", merge("type")),
    ("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", merge("type")),
    ("io.k8s.api.apps.v1.StatefulSetStatus", "conditions", merge("type")),
    ("io.k8s.api.batch.v1.JobStatus", "conditions", merge("type")),
];

/// The strategy of `field` inside an object of OpenAPI definition `parent`, if it has one.
pub fn for_field(parent: &str, field: &str) -> Option<FieldStrategy> {
    TABLE.iter().find(|(p, f, _)| *p == parent && *f == field).map(|(_, _, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_merge_by_name_and_tolerations_are_replaced() {
        assert_eq!(for_field("io.k8s.api.core.v1.PodSpec", "containers").unwrap().merge_key, Some("name"));
        assert!(for_field("io.k8s.api.core.v1.PodSpec", "tolerations").is_none());
        let volumes = for_field("io.k8s.api.core.v1.PodSpec", "volumes").unwrap();
        assert!(volumes.merges() && volumes.retains_keys());
    }
}
