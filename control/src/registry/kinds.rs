//! The table of every resource the API server serves: group, version, names, scope, short
//! names and subresources. Discovery, OpenAPI, routing and storage keys all read it.

/// A subresource served under `.../{name}/{subresource}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Status,
    Scale,
    Binding,
    Log,
    /// `pods/{name}/exec`: a WebSocket session relayed to the node's agent.
    Exec,
    /// `pods/{name}/portforward`: kubectl's SPDY session, each connection relayed to the node's agent.
    PortForward,
    /// `namespaces/{name}/finalize`: where the namespace controller clears `spec.finalizers`.
    Finalize,
    /// `pods/{name}/eviction`: a policy/v1 Eviction deletes the pod (what `kubectl drain` uses).
    Eviction,
    /// `{name}/proxy[/path]`: nodes (the agent's metrics) and functions (the function through a
    /// node's gateway); the only subresource with a path under it.
    Proxy,
    /// `serviceaccounts/{name}/token`: a TokenRequest returns a signed token of the account
    /// (what `kubectl create token` and agents use).
    Token,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::PortForward => "portforward",
            Subresource::Finalize => "finalize",
            Subresource::Eviction => "eviction",
            Subresource::Proxy => "proxy",
            Subresource::Token => "token",
        }
    }

    /// Group, version and kind of the object the subresource speaks.
    pub fn gvk(self, parent: &ResourceInfo) -> (&'static str, &'static str, &'static str) {
        match self {
            Subresource::Status => (parent.group, parent.version, parent.kind),
            Subresource::Scale => ("autoscaling", "v1", "Scale"),
            Subresource::Binding => ("", "v1", "Binding"),
            Subresource::Log => ("", "v1", "Pod"),
            Subresource::Exec => ("", "v1", "PodExecOptions"),
            Subresource::PortForward => ("", "v1", "PodPortForwardOptions"),
            Subresource::Finalize => ("", "v1", "Namespace"),
            Subresource::Eviction => ("policy", "v1", "Eviction"),
            Subresource::Proxy if parent.kind == "Node" => ("", "v1", "NodeProxyOptions"),
            Subresource::Proxy => (parent.group, parent.version, "FunctionProxyOptions"),
            Subresource::Token => ("authentication.k8s.io", "v1", "TokenRequest"),
        }
    }

    pub fn verbs(self) -> &'static [&'static str] {
        match self {
            Subresource::Status | Subresource::Scale => &["get", "patch", "update"],
            Subresource::Binding | Subresource::Eviction | Subresource::Token => &["create"],
            Subresource::Log => &["get"],
            Subresource::Exec | Subresource::PortForward => &["create", "get"],
            Subresource::Finalize => &["update"],
            Subresource::Proxy => &["create", "delete", "get", "patch", "update"],
        }
    }
}

/// One served resource.
#[derive(Debug)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// Name of the OpenAPI definition of the kind, e.g. `io.k8s.api.core.v1.Pod`.
    pub definition: &'static str,
}

/// Verbs every stored resource offers.
pub const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

impl ResourceInfo {
    /// `v1` for the core group, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The key this resource's objects are stored under: `pods`, `deployments.apps`.
    pub fn storage_key(&self) -> String {
        if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// URL prefix of the group-version: `/api/v1` or `/apis/apps/v1`.
    pub fn gv_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// Whether this is a review (SubjectAccessReview, TokenReview, ...): created to ask a
    /// question and answered, never stored.
    pub fn is_review(&self) -> bool {
        matches!(self.group, "authorization.k8s.io" | "authentication.k8s.io")
    }

    /// The verbs the resource offers: only `create` for reviews.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.is_review() { &["create"] } else { VERBS }
    }
}

use Subresource::*;

const WORKLOAD: &[&str] = &["all"];

pub static RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &[Status, Finalize],
        definition: "io.k8s.api.core.v1.Namespace",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &[Status, Proxy],
        definition: "io.k8s.api.core.v1.Node",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        categories: WORKLOAD,
        subresources: &[Status, Binding, Log, Exec, PortForward, Eviction],
        definition: "io.k8s.api.core.v1.Pod",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        namespaced: true,
        short_names: &["svc"],
        categories: WORKLOAD,
        subresources: &[Status],
        definition: "io.k8s.api.core.v1.Service",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.core.v1.Endpoints",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.core.v1.ConfigMap",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.core.v1.Secret",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.core.v1.Event",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        subresources: &[Token],
        definition: "io.k8s.api.core.v1.ServiceAccount",
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: WORKLOAD,
        subresources: &[Status, Scale],
        definition: "io.k8s.api.apps.v1.Deployment",
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        namespaced: true,
        short_names: &["rs"],
        categories: WORKLOAD,
        subresources: &[Status, Scale],
        definition: "io.k8s.api.apps.v1.ReplicaSet",
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        singular: "daemonset",
        namespaced: true,
        short_names: &["ds"],
        categories: WORKLOAD,
        subresources: &[Status],
        definition: "io.k8s.api.apps.v1.DaemonSet",
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        plural: "statefulsets",
        singular: "statefulset",
        namespaced: true,
        short_names: &["sts"],
        categories: WORKLOAD,
        subresources: &[Status, Scale],
        definition: "io.k8s.api.apps.v1.StatefulSet",
    },
    ResourceInfo {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
        singular: "job",
        namespaced: true,
        short_names: &[],
        categories: WORKLOAD,
        subresources: &[Status],
        definition: "io.k8s.api.batch.v1.Job",
    },
    ResourceInfo {
        group: "batch",
        version: "v1",
        kind: "CronJob",
        plural: "cronjobs",
        singular: "cronjob",
        namespaced: true,
        short_names: &["cj"],
        categories: WORKLOAD,
        subresources: &[Status],
        definition: "io.k8s.api.batch.v1.CronJob",
    },
    ResourceInfo {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.coordination.v1.Lease",
    },
    ResourceInfo {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.discovery.v1.EndpointSlice",
    },
    ResourceInfo {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.events.v1.Event",
    },
    ResourceInfo {
        group: "node.k8s.io",
        version: "v1",
        kind: "RuntimeClass",
        plural: "runtimeclasses",
        singular: "runtimeclass",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.node.v1.RuntimeClass",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ResourceQuota",
        plural: "resourcequotas",
        singular: "resourcequota",
        namespaced: true,
        short_names: &["quota"],
        categories: &[],
        subresources: &[Status],
        definition: "io.k8s.api.core.v1.ResourceQuota",
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "LimitRange",
        plural: "limitranges",
        singular: "limitrange",
        namespaced: true,
        short_names: &["limits"],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.core.v1.LimitRange",
    },
    ResourceInfo {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "Role",
        plural: "roles",
        singular: "role",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.rbac.v1.Role",
    },
    ResourceInfo {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        singular: "clusterrole",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.rbac.v1.ClusterRole",
    },
    ResourceInfo {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        singular: "rolebinding",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.rbac.v1.RoleBinding",
    },
    ResourceInfo {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.rbac.v1.ClusterRoleBinding",
    },
    ResourceInfo {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SelfSubjectAccessReview",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
    },
    ResourceInfo {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SelfSubjectRulesReview",
        plural: "selfsubjectrulesreviews",
        singular: "selfsubjectrulesreview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.authorization.v1.SelfSubjectRulesReview",
    },
    ResourceInfo {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SubjectAccessReview",
        plural: "subjectaccessreviews",
        singular: "subjectaccessreview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.authorization.v1.SubjectAccessReview",
    },
    ResourceInfo {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "LocalSubjectAccessReview",
        plural: "localsubjectaccessreviews",
        singular: "localsubjectaccessreview",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.authorization.v1.LocalSubjectAccessReview",
    },
    ResourceInfo {
        group: "authentication.k8s.io",
        version: "v1",
        kind: "TokenReview",
        plural: "tokenreviews",
        singular: "tokenreview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.authentication.v1.TokenReview",
    },
    ResourceInfo {
        group: "authentication.k8s.io",
        version: "v1",
        kind: "SelfSubjectReview",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        definition: "io.k8s.api.authentication.v1.SelfSubjectReview",
    },
    ResourceInfo {
        group: "wharf.dev",
        version: "v1",
        kind: "Function",
        plural: "functions",
        singular: "function",
        namespaced: true,
        short_names: &["fn"],
        categories: WORKLOAD,
        subresources: &[Status, Log, Proxy],
        definition: "dev.wharf.v1.Function",
    },
];

/// The resource served at `group`/`version` under `plural`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource for an `apiVersion` and `kind` as written in an object.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The group-versions served, in discovery order (core first).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_is_found_by_path_and_kind() {
        for r in RESOURCES {
            assert!(std::ptr::eq(lookup(r.group, r.version, r.plural).unwrap(), r));
            assert!(std::ptr::eq(by_kind(&r.api_version(), r.kind).unwrap(), r));
        }
    }

    #[test]
    fn storage_keys_are_unique() {
        let mut keys: Vec<String> = RESOURCES.iter().map(|r| r.storage_key()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), RESOURCES.len());
    }
}
