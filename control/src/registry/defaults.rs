//! Per-kind defaults, filled in place as kube-apiserver's defaulting (and the admission plugins
//! every cluster runs: ServiceAccount, Priority, DefaultTolerationSeconds) does for the v1 types.
//! Only absent (or null) fields are filled, and quantities are rewritten in the canonical form
//! kube-apiserver stores (`0.5` → `500m`, `1024Mi` → `1Gi`), so applying twice is the same as
//! applying once. Values of the wrong type are left for validation to report.

use serde_json::{Map, Value, json};

use crate::registry::kinds::ResourceInfo;
use crate::registry::validation::Quantity;

/// Fills Kubernetes' defaults for the kind of `obj` in place.
pub fn apply(resource: &ResourceInfo, obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    match (resource.group, resource.kind) {
        ("", "Pod") => pod(o),
        ("", "Service") => service(o),
        ("", "Secret") => set(o, "type", "Opaque"),
        ("", "Namespace") => namespace(o),
        ("", "Node") => node(o),
        ("", "Endpoints") => endpoints(o),
        ("apps", "Deployment") => deployment(o),
        ("apps", "ReplicaSet") => replica_set(o),
        ("apps", "DaemonSet") => daemon_set(o),
        ("apps", "StatefulSet") => stateful_set(o),
        ("batch", "Job") => job(o),
        ("batch", "CronJob") => cron_job(o),
        ("discovery.k8s.io", "EndpointSlice") => endpoint_slice(o),
        ("node.k8s.io", "RuntimeClass") => runtime_class(o),
        ("wharf.dev", "Function") => function(o),
        ("", "LimitRange") => super::quota::default_limit_range(o),
        _ => {}
    }
}

/// Sets `m[k]` when absent or null.
fn set(m: &mut Map<String, Value>, k: &str, v: impl Into<Value>) {
    if m.get(k).is_none_or(Value::is_null) {
        m.insert(k.to_string(), v.into());
    }
}

/// The object at `m[k]`, created when absent; None when it holds something else.
fn object<'a>(m: &'a mut Map<String, Value>, k: &str) -> Option<&'a mut Map<String, Value>> {
    set(m, k, json!({}));
    m.get_mut(k).and_then(Value::as_object_mut)
}

/// The object at `m[k]` if there is one.
fn existing<'a>(m: &'a mut Map<String, Value>, k: &str) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(k).and_then(Value::as_object_mut)
}

/// The object items of the array at `m[k]`.
fn items<'a>(m: &'a mut Map<String, Value>, k: &str) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(k).and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut)
}

/// Whether an integer field is absent, null or zero (Go's zero value for probe fields).
fn unset_or_zero(m: &Map<String, Value>, k: &str) -> bool {
    m.get(k).is_none_or(|v| v.is_null() || v.as_i64() == Some(0))
}

/// Rewrites the quantities of a resource list (`m[k]`) in canonical form, rounded up to
/// thousandths, as kube-apiserver stores them; unparsable values are left for validation.
fn resource_list(m: &mut Map<String, Value>, k: &str) {
    for v in existing(m, k).into_iter().flat_map(|l| l.values_mut()) {
        if let Ok(q) = Quantity::from_json(v) {
            *v = q.round_up(-3).canonical().into();
        }
    }
}

fn quantity(m: &mut Map<String, Value>, k: &str) {
    if let Some(v) = m.get_mut(k)
        && let Ok(q) = Quantity::from_json(v)
    {
        *v = q.canonical().into();
    }
}

fn resource_requirements(m: &mut Map<String, Value>, k: &str) {
    if let Some(r) = existing(m, k) {
        resource_list(r, "limits");
        resource_list(r, "requests");
    }
}

/// A PersistentVolumeClaim, standalone or as a template.
fn claim(c: &mut Map<String, Value>) {
    if let Some(spec) = object(c, "spec") {
        set(spec, "volumeMode", "Filesystem");
        resource_requirements(spec, "resources");
    }
}

// ---------------------------------------------------------------------------------------------
// Pods and pod templates

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise (a digest counts as a tag).
fn pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, t)| t);
    match (tag, digest) {
        _ if image.is_empty() => "IfNotPresent",
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

fn probe(c: &mut Map<String, Value>, k: &str) {
    let Some(p) = existing(c, k) else { return };
    for (field, value) in
        [("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)]
    {
        if unset_or_zero(p, field) {
            p.insert(field.into(), value.into());
        }
    }
    http_get(p);
}

fn http_get(handler: &mut Map<String, Value>) {
    if let Some(h) = existing(handler, "httpGet") {
        if h.get("path").is_none_or(|v| v.is_null() || v.as_str() == Some("")) {
            h.insert("path".into(), "/".into());
        }
        set(h, "scheme", "HTTP");
    }
}

fn container(c: &mut Map<String, Value>) {
    if c.get("imagePullPolicy").is_none_or(|v| v.is_null() || v.as_str() == Some("")) {
        let policy = pull_policy(c.get("image").and_then(Value::as_str).unwrap_or(""));
        c.insert("imagePullPolicy".into(), policy.into());
    }
    set(c, "terminationMessagePath", "/dev/termination-log");
    set(c, "terminationMessagePolicy", "File");
    for port in items(c, "ports") {
        set(port, "protocol", "TCP");
    }
    for env in items(c, "env") {
        if let Some(field_ref) = existing(env, "valueFrom").and_then(|f| existing(f, "fieldRef")) {
            set(field_ref, "apiVersion", "v1");
        }
    }
    for k in ["livenessProbe", "readinessProbe", "startupProbe"] {
        probe(c, k);
    }
    resource_requirements(c, "resources");
    if let Some(lifecycle) = existing(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = existing(lifecycle, hook) {
                http_get(h);
            }
        }
    }
}

fn volume(v: &mut Map<String, Value>) {
    if !v.iter().any(|(k, val)| k != "name" && !val.is_null()) {
        v.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = existing(v, source) {
            set(s, "defaultMode", 420);
        }
    }
    if let Some(h) = existing(v, "hostPath") {
        set(h, "type", "");
    }
    if let Some(e) = existing(v, "emptyDir") {
        quantity(e, "sizeLimit");
    }
    if let Some(d) = existing(v, "downwardAPI") {
        for item in items(d, "items") {
            if let Some(f) = existing(item, "fieldRef") {
                set(f, "apiVersion", "v1");
            }
        }
    }
    if let Some(p) = existing(v, "projected") {
        for source in items(p, "sources") {
            if let Some(t) = existing(source, "serviceAccountToken") {
                set(t, "expirationSeconds", 3600);
            }
            if let Some(d) = existing(source, "downwardAPI") {
                for item in items(d, "items") {
                    if let Some(f) = existing(item, "fieldRef") {
                        set(f, "apiVersion", "v1");
                    }
                }
            }
        }
    }
    if let Some(template) = existing(v, "ephemeral").and_then(|e| existing(e, "volumeClaimTemplate")) {
        claim(template);
    }
}

/// SetDefaults_PodSpec and what it recurses into; shared by pods and every pod template.
fn pod_spec(spec: &mut Map<String, Value>) {
    set(spec, "dnsPolicy", "ClusterFirst");
    set(spec, "restartPolicy", "Always");
    set(spec, "securityContext", json!({}));
    set(spec, "terminationGracePeriodSeconds", 30);
    set(spec, "schedulerName", "default-scheduler");
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in items(spec, list) {
            container(c);
        }
    }
    for v in items(spec, "volumes") {
        volume(v);
    }
    resource_list(spec, "overhead");
    resource_requirements(spec, "resources");
}

fn pod_template(spec: &mut Map<String, Value>) {
    if let Some(s) = object(spec, "template").and_then(|t| object(t, "spec")) {
        pod_spec(s);
    }
}

fn pod(o: &mut Map<String, Value>) {
    let Some(spec) = object(o, "spec") else { return };
    pod_spec(spec);
    set(spec, "enableServiceLinks", true);
    // Requests default to limits, on pods only (not templates).
    for list in ["containers", "initContainers"] {
        for c in items(spec, list) {
            let Some(resources) = existing(c, "resources") else { continue };
            let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else { continue };
            if let Some(requests) = object(resources, "requests") {
                for (k, v) in limits {
                    requests.entry(k).or_insert(v);
                }
            }
        }
    }
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for list in ["containers", "initContainers"] {
            for c in items(spec, list) {
                for port in items(c, "ports") {
                    if unset_or_zero(port, "hostPort")
                        && let Some(cp) = port.get("containerPort").cloned()
                    {
                        port.insert("hostPort".into(), cp);
                    }
                }
            }
        }
    }
    // The ServiceAccount admission plugin, and v1's copy into the deprecated field.
    if spec.get("serviceAccountName").is_none_or(|v| v.is_null() || v.as_str() == Some("")) {
        spec.insert("serviceAccountName".into(), "default".into());
    }
    if let Some(sa) = spec.get("serviceAccountName").cloned() {
        set(spec, "serviceAccount", sa);
    }
    // The Priority admission plugin, with no PriorityClasses defined.
    if spec.get("priorityClassName").is_none_or(|v| v.is_null() || v.as_str() == Some("")) {
        set(spec, "priority", 0);
    }
    set(spec, "preemptionPolicy", "PreemptLowerPriority");
    // The DefaultTolerationSeconds admission plugin runs at creation only, with the server's
    // flags: api/admission.rs.
}

// ---------------------------------------------------------------------------------------------
// Workloads

fn deployment(o: &mut Map<String, Value>) {
    let Some(spec) = object(o, "spec") else { return };
    set(spec, "replicas", 1);
    if let Some(strategy) = object(spec, "strategy") {
        set(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = object(strategy, "rollingUpdate")
        {
            set(ru, "maxUnavailable", "25%");
            set(ru, "maxSurge", "25%");
        }
    }
    set(spec, "revisionHistoryLimit", 10);
    set(spec, "progressDeadlineSeconds", 600);
    pod_template(spec);
}

fn replica_set(o: &mut Map<String, Value>) {
    let Some(spec) = object(o, "spec") else { return };
    set(spec, "replicas", 1);
    pod_template(spec);
}

fn daemon_set(o: &mut Map<String, Value>) {
    let Some(spec) = object(o, "spec") else { return };
    if let Some(strategy) = object(spec, "updateStrategy") {
        set(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = object(strategy, "rollingUpdate")
        {
            set(ru, "maxUnavailable", 1);
            set(ru, "maxSurge", 0);
        }
    }
    set(spec, "revisionHistoryLimit", 10);
    pod_template(spec);
}

fn stateful_set(o: &mut Map<String, Value>) {
    let Some(spec) = object(o, "spec") else { return };
    set(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = object(spec, "updateStrategy") {
        if strategy.get("type").is_none_or(Value::is_null) {
            strategy.insert("type".into(), "RollingUpdate".into());
            set(strategy, "rollingUpdate", json!({}));
        }
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = existing(strategy, "rollingUpdate")
        {
            set(ru, "partition", 0);
        }
    }
    if let Some(policy) = object(spec, "persistentVolumeClaimRetentionPolicy") {
        set(policy, "whenDeleted", "Retain");
        set(policy, "whenScaled", "Retain");
    }
    set(spec, "replicas", 1);
    set(spec, "revisionHistoryLimit", 10);
    for template in items(spec, "volumeClaimTemplates") {
        claim(template);
        if let Some(status) = object(template, "status") {
            set(status, "phase", "Pending");
        }
    }
    pod_template(spec);
}

/// The Job fields SetDefaults_Job fills (not applied to a CronJob's job template).
fn job_spec(spec: &mut Map<String, Value>) {
    if spec.get("completions").is_none_or(Value::is_null) && spec.get("parallelism").is_none_or(Value::is_null) {
        spec.insert("completions".into(), 1.into());
    }
    set(spec, "parallelism", 1);
    let per_index = spec.get("backoffLimitPerIndex").is_some_and(|v| !v.is_null());
    set(spec, "backoffLimit", if per_index { i64::from(i32::MAX) } else { 6 });
    set(spec, "completionMode", "NonIndexed");
    set(spec, "suspend", false);
    let failure_policy = spec.get("podFailurePolicy").is_some_and(|v| !v.is_null());
    set(spec, "podReplacementPolicy", if failure_policy { "Failed" } else { "TerminatingOrFailed" });
    if let Some(policy) = existing(spec, "podFailurePolicy") {
        for rule in items(policy, "rules") {
            for pattern in items(rule, "onPodConditions") {
                set(pattern, "status", "True");
            }
        }
    }
}

/// The Job strategy's selector generation: pods get the job-name and controller-uid labels and
/// the selector picks the uid, unless the user asked for a manual selector.
fn generate_job_selector(o: &mut Map<String, Value>) {
    let meta = o.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
    let uid = meta.and_then(|m| m.get("uid")).and_then(Value::as_str).unwrap_or("").to_string();
    let Some(spec) = existing(o, "spec") else { return };
    if uid.is_empty() || spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(labels) = object(spec, "template").and_then(|t| object(t, "metadata")).and_then(|m| object(m, "labels"))
    {
        set(labels, "batch.kubernetes.io/controller-uid", uid.as_str());
        set(labels, "batch.kubernetes.io/job-name", name.as_str());
        set(labels, "controller-uid", uid.as_str());
        set(labels, "job-name", name.as_str());
    }
    if let Some(match_labels) = object(spec, "selector").and_then(|s| object(s, "matchLabels")) {
        set(match_labels, "batch.kubernetes.io/controller-uid", uid.as_str());
    }
}

fn job(o: &mut Map<String, Value>) {
    let Some(spec) = object(o, "spec") else { return };
    job_spec(spec);
    pod_template(spec);
    generate_job_selector(o);
    // A Job without labels takes its pod template's.
    let template_labels = o
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.as_object().is_some_and(|l| !l.is_empty()))
        .cloned();
    if let Some(labels) = template_labels
        && let Some(meta) = object(o, "metadata")
        && meta.get("labels").is_none_or(|l| l.is_null() || l.as_object().is_some_and(Map::is_empty))
    {
        meta.insert("labels".into(), labels);
    }
}

fn cron_job(o: &mut Map<String, Value>) {
    let Some(spec) = object(o, "spec") else { return };
    set(spec, "concurrencyPolicy", "Allow");
    set(spec, "suspend", false);
    set(spec, "successfulJobsHistoryLimit", 3);
    set(spec, "failedJobsHistoryLimit", 1);
    if let Some(job_spec) = object(spec, "jobTemplate").and_then(|t| object(t, "spec")) {
        pod_template(job_spec);
    }
}

// ---------------------------------------------------------------------------------------------
// Services and the rest

fn service(o: &mut Map<String, Value>) {
    let Some(spec) = object(o, "spec") else { return };
    set(spec, "sessionAffinity", "None");
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout =
                spec.get("sessionAffinityConfig").and_then(|c| c.get("clientIP")).and_then(|c| c.get("timeoutSeconds"));
            if has_timeout.is_none_or(Value::is_null) {
                spec.insert("sessionAffinityConfig".into(), json!({"clientIP": {"timeoutSeconds": 10800}}));
            }
        }
        _ => {}
    }
    set(spec, "type", "ClusterIP");
    for port in items(spec, "ports") {
        set(port, "protocol", "TCP");
        let unset =
            port.get("targetPort").is_none_or(|t| t.is_null() || t.as_i64() == Some(0) || t.as_str() == Some(""));
        if unset && let Some(p) = port.get("port").filter(|p| p.is_i64()).cloned() {
            port.insert("targetPort".into(), p);
        }
    }
    let service_type = spec.get("type").and_then(Value::as_str).unwrap_or("").to_string();
    let has_external_ips = spec.get("externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    if matches!(service_type.as_str(), "NodePort" | "LoadBalancer") || (service_type == "ClusterIP" && has_external_ips)
    {
        set(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(service_type.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set(spec, "internalTrafficPolicy", "Cluster");
    }
    if service_type == "LoadBalancer" {
        set(spec, "allocateLoadBalancerNodePorts", true);
    }
    if service_type == "ExternalName" {
        return;
    }
    // clusterIP and clusterIPs name the same address; the strategy keeps them in step.
    let cluster_ip = spec.get("clusterIP").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let first_ip = spec.get("clusterIPs").and_then(|a| a.get(0)).and_then(Value::as_str).map(str::to_string);
    match (&cluster_ip, &first_ip) {
        (Some(ip), None)
            if spec.get("clusterIPs").is_none_or(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty)) =>
        {
            spec.insert("clusterIPs".into(), json!([ip]));
        }
        (None, Some(ip)) => {
            spec.insert("clusterIP".into(), ip.as_str().into());
        }
        _ => {}
    }
    set(spec, "ipFamilyPolicy", "SingleStack");
    if spec.get("ipFamilies").is_none_or(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty)) {
        let ips: Vec<String> = spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|ip| *ip != "None")
            .map(str::to_string)
            .collect();
        let families: Vec<&str> = if ips.is_empty() {
            vec!["IPv4"]
        } else {
            ips.iter().map(|ip| if ip.contains(':') { "IPv6" } else { "IPv4" }).collect()
        };
        spec.insert("ipFamilies".into(), json!(families));
    }
}

fn namespace(o: &mut Map<String, Value>) {
    let name = o.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
    let deleting = o.get("metadata").and_then(|m| m.get("deletionTimestamp")).is_some_and(|t| !t.is_null());
    if !name.is_empty()
        && let Some(labels) = object(o, "metadata").and_then(|m| object(m, "labels"))
    {
        labels.insert("kubernetes.io/metadata.name".into(), name.into());
    }
    // The finalize subresource empties the list on deletion; never put it back then.
    if !deleting && let Some(spec) = object(o, "spec") {
        set(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = object(o, "status") {
        set(status, "phase", "Active");
    }
}

fn node(o: &mut Map<String, Value>) {
    let Some(status) = existing(o, "status") else { return };
    resource_list(status, "capacity");
    resource_list(status, "allocatable");
    if let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned() {
        set(status, "allocatable", capacity);
    }
}

fn endpoints(o: &mut Map<String, Value>) {
    for subset in items(o, "subsets") {
        for port in items(subset, "ports") {
            set(port, "protocol", "TCP");
        }
    }
}

fn endpoint_slice(o: &mut Map<String, Value>) {
    for port in items(o, "ports") {
        set(port, "name", "");
        set(port, "protocol", "TCP");
    }
}

fn function(o: &mut Map<String, Value>) {
    let name = o.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
    let Some(spec) = object(o, "spec") else { return };
    if let Some(scale) = object(spec, "scale") {
        set(scale, "minReplicas", 0);
        set(scale, "maxReplicas", 10);
        set(scale, "targetConcurrency", 10);
        set(scale, "idleTimeout", "60s");
    }
    if !name.is_empty()
        && let Some(route) = object(spec, "route")
    {
        set(route, "path", format!("/{name}"));
    }
    resource_requirements(spec, "resources");
}

fn runtime_class(o: &mut Map<String, Value>) {
    if let Some(overhead) = existing(o, "overhead") {
        resource_list(overhead, "podFixed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::kinds::lookup;

    fn defaulted(group: &str, plural: &str, mut obj: Value) -> Value {
        let r = lookup(group, "v1", plural).unwrap();
        apply(r, &mut obj);
        let once = obj.clone();
        apply(r, &mut obj);
        assert_eq!(obj, once, "applying defaults twice must equal applying once");
        obj
    }

    #[test]
    fn pod_defaults() {
        let pod = defaulted(
            "",
            "pods",
            json!({
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "containers": [{
                        "name": "web", "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}},
                        "readinessProbe": {"httpGet": {"port": 80}},
                        "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
                    }, {
                        "name": "sidecar", "image": "x",
                        "resources": {"limits": {"cpu": 1.5, "memory": "1024Mi"}, "requests": {"cpu": "0.0001"}}
                    }],
                    "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "cfg"}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "524288Ki"}}]
                }
            }),
        );
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["serviceAccount"], "default");
        assert_eq!(spec["priority"], 0);
        assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["resources"]["requests"], json!({"memory": "1Gi", "cpu": "1"}));
        // Quantities are stored canonical, resource lists rounded up to thousandths.
        assert_eq!(
            spec["containers"][1]["resources"],
            json!({"limits": {"cpu": "1500m", "memory": "1Gi"}, "requests": {"cpu": "1m", "memory": "1Gi"}})
        );
        assert_eq!(spec["volumes"][2]["emptyDir"]["sizeLimit"], "512Mi");
        assert_eq!(
            c["readinessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                   "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
    }

    #[test]
    fn pod_defaults_keep_what_is_set() {
        let pod = defaulted(
            "",
            "pods",
            json!({"metadata": {"name": "p"}, "spec": {
                "restartPolicy": "Never", "serviceAccountName": "builder", "priorityClassName": "high",
                "tolerations": [{"operator": "Exists"}], "hostNetwork": true,
                "containers": [{"name": "c", "image": "x", "imagePullPolicy": "Never", "ports": [{"containerPort": 8080}]}]
            }}),
        );
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["serviceAccount"], "builder");
        assert!(spec.get("priority").is_none());
        assert_eq!(spec["tolerations"], json!([{"operator": "Exists"}]));
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(spec["containers"][0]["ports"][0]["hostPort"], 8080);
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("registry.local:5000/team/app", "Always"),
            ("registry.local:5000/team/app:v2", "IfNotPresent"),
            ("app@sha256:0123456789abcdef", "IfNotPresent"),
            ("app:latest@sha256:0123456789abcdef", "Always"),
            ("", "IfNotPresent"),
        ] {
            assert_eq!(pull_policy(image), policy, "{image}");
        }
    }

    #[test]
    fn deployment_defaults() {
        let d = defaulted(
            "apps",
            "deployments",
            json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}),
        );
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
        // Pod-only defaults stay out of templates.
        assert!(pod.get("enableServiceLinks").is_none() && pod.get("serviceAccountName").is_none());

        let recreate =
            defaulted("apps", "deployments", json!({"spec": {"strategy": {"type": "Recreate"}, "replicas": 0}}));
        assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(recreate["spec"]["replicas"], 0);
    }

    #[test]
    fn replica_daemon_and_stateful_set_defaults() {
        let rs = defaulted("apps", "replicasets", json!({"spec": {"template": {"spec": {}}}}));
        assert_eq!(rs["spec"]["replicas"], 1);
        assert_eq!(rs["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");

        let ds = defaulted("apps", "daemonsets", json!({"spec": {}}));
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);

        let sts = defaulted(
            "apps",
            "statefulsets",
            json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}}),
        );
        let spec = &sts["spec"];
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(spec["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["volumeClaimTemplates"][0]["spec"]["volumeMode"], "Filesystem");
        assert_eq!(spec["volumeClaimTemplates"][0]["status"]["phase"], "Pending");

        let on_delete = defaulted("apps", "statefulsets", json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}));
        assert_eq!(on_delete["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
    }

    #[test]
    fn job_defaults() {
        let job = defaulted(
            "batch",
            "jobs",
            json!({"metadata": {"name": "pi", "uid": "u-1"},
                   "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}}}),
        );
        let spec = &job["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert!(spec.get("manualSelector").is_none());
        assert_eq!(spec["selector"], json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}));
        let labels = json!({
            "batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
            "controller-uid": "u-1", "job-name": "pi"
        });
        assert_eq!(spec["template"]["metadata"]["labels"], labels);
        assert_eq!(job["metadata"]["labels"], labels);
        assert_eq!(spec["template"]["spec"]["terminationGracePeriodSeconds"], 30);

        let parallel =
            defaulted("batch", "jobs", json!({"spec": {"parallelism": 3, "podFailurePolicy": {"rules": []}}}));
        assert!(parallel["spec"].get("completions").is_none());
        assert_eq!(parallel["spec"]["podReplacementPolicy"], "Failed");

        let manual = defaulted(
            "batch",
            "jobs",
            json!({"metadata": {"name": "m", "uid": "u", "labels": {"team": "a"}},
                   "spec": {"manualSelector": true, "selector": {"matchLabels": {"app": "m"}},
                            "template": {"metadata": {"labels": {"app": "m"}}}}}),
        );
        assert_eq!(manual["spec"]["selector"], json!({"matchLabels": {"app": "m"}}));
        assert_eq!(manual["spec"]["template"]["metadata"]["labels"], json!({"app": "m"}));
        assert_eq!(manual["metadata"]["labels"], json!({"team": "a"}));
    }

    #[test]
    fn cron_job_defaults() {
        let cj = defaulted(
            "batch",
            "cronjobs",
            json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}}),
        );
        let spec = &cj["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Allow");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["successfulJobsHistoryLimit"], 3);
        assert_eq!(spec["failedJobsHistoryLimit"], 1);
        let job_spec = &spec["jobTemplate"]["spec"];
        assert_eq!(job_spec["template"]["spec"]["restartPolicy"], "Always");
        // Job defaults apply to Jobs, not to the template they are made from.
        assert!(job_spec.get("backoffLimit").is_none());
    }

    #[test]
    fn service_defaults() {
        let svc = defaulted(
            "",
            "services",
            json!({"spec": {"ports": [{"port": 80}, {"name": "b", "port": 81, "targetPort": "http", "protocol": "UDP"}]}}),
        );
        let spec = &svc["spec"];
        assert_eq!(spec["type"], "ClusterIP");
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
        assert_eq!(spec["ports"][1], json!({"name": "b", "port": 81, "targetPort": "http", "protocol": "UDP"}));
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert!(spec.get("externalTrafficPolicy").is_none());

        let lb = defaulted(
            "",
            "services",
            json!({"spec": {"type": "LoadBalancer", "clusterIP": "fd00::10", "sessionAffinity": "ClientIP", "ports": [{"port": 443}]}}),
        );
        let spec = &lb["spec"];
        assert_eq!(spec["externalTrafficPolicy"], "Cluster");
        assert_eq!(spec["allocateLoadBalancerNodePorts"], true);
        assert_eq!(spec["clusterIPs"], json!(["fd00::10"]));
        assert_eq!(spec["ipFamilies"], json!(["IPv6"]));
        assert_eq!(spec["sessionAffinityConfig"], json!({"clientIP": {"timeoutSeconds": 10800}}));

        let external =
            defaulted("", "services", json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}));
        assert!(
            external["spec"].get("ipFamilyPolicy").is_none() && external["spec"].get("internalTrafficPolicy").is_none()
        );

        let synced = defaulted("", "services", json!({"spec": {"clusterIPs": ["10.0.0.9"], "ports": [{"port": 1}]}}));
        assert_eq!(synced["spec"]["clusterIP"], "10.0.0.9");
    }

    #[test]
    fn namespace_secret_node_and_endpoint_defaults() {
        let ns = defaulted("", "namespaces", json!({"metadata": {"name": "team-a"}}));
        assert_eq!(ns["metadata"]["labels"], json!({"kubernetes.io/metadata.name": "team-a"}));
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");

        let terminating = defaulted(
            "",
            "namespaces",
            json!({"metadata": {"name": "old", "deletionTimestamp": "2024-01-01T00:00:00Z"}, "spec": {}, "status": {"phase": "Terminating"}}),
        );
        assert!(terminating["spec"].get("finalizers").is_none());
        assert_eq!(terminating["status"]["phase"], "Terminating");

        let secret = defaulted("", "secrets", json!({"metadata": {"name": "s"}}));
        assert_eq!(secret["type"], "Opaque");

        let node =
            defaulted("", "nodes", json!({"status": {"capacity": {"cpu": 4, "memory": "8388608Ki", "pods": "110"}}}));
        assert_eq!(node["status"]["allocatable"], json!({"cpu": "4", "memory": "8Gi", "pods": "110"}));
        let bare = defaulted("", "nodes", json!({"metadata": {"name": "n"}}));
        assert_eq!(bare, json!({"metadata": {"name": "n"}}));

        let ep = defaulted("", "endpoints", json!({"subsets": [{"ports": [{"port": 80}]}]}));
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
        let slice = defaulted("discovery.k8s.io", "endpointslices", json!({"ports": [{"port": 80}]}));
        assert_eq!(slice["ports"][0], json!({"port": 80, "name": "", "protocol": "TCP"}));
    }

    #[test]
    fn function_defaults() {
        let f = defaulted("wharf.dev", "functions", json!({"metadata": {"name": "hello"}, "spec": {"image": "x"}}));
        assert_eq!(
            f["spec"]["scale"],
            json!({"minReplicas": 0, "maxReplicas": 10, "targetConcurrency": 10, "idleTimeout": "60s"})
        );
        assert_eq!(f["spec"]["route"], json!({"path": "/hello"}));

        let custom = defaulted(
            "wharf.dev",
            "functions",
            json!({"metadata": {"name": "hello"}, "spec": {"route": {"path": "/api"}, "scale": {"maxReplicas": 2}}}),
        );
        assert_eq!(custom["spec"]["route"]["path"], "/api");
        assert_eq!(custom["spec"]["scale"]["maxReplicas"], 2);
    }

    #[test]
    fn mistyped_fields_are_left_alone() {
        for (group, plural) in [("", "pods"), ("apps", "deployments"), ("batch", "jobs"), ("", "services")] {
            let obj = defaulted(group, plural, json!({"metadata": {"name": "x"}, "spec": "nonsense"}));
            assert_eq!(obj["spec"], "nonsense");
            let obj = defaulted(group, plural, json!({"spec": {"template": 3, "containers": {"a": 1}, "ports": "80"}}));
            assert_eq!(obj["spec"]["ports"], "80");
        }
        let mut not_an_object = json!([1, 2]);
        apply(lookup("", "v1", "pods").unwrap(), &mut not_an_object);
        assert_eq!(not_an_object, json!([1, 2]));
    }
}
