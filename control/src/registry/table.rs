//! Server-side `meta.k8s.io/v1` Table columns and cells per kind: what `kubectl get` prints when it
//! asks for `as=Table`. Columns, priorities (1 = only with `-o wide`) and cell formats follow
//! kube-apiserver's printers; like kube-apiserver, every row carries the wide cells too and
//! kubectl hides the priority-1 columns itself.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::registry::kinds::ResourceInfo;

/// Column definitions for the kind: `{"name","type","format","description","priority"}` objects.
pub fn columns(resource: &ResourceInfo) -> Vec<Value> {
    printer(resource)
        .columns()
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.ty,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect()
}

/// The cells of one object's row, aligned with [`columns`]; `now` is the reference for ages.
pub fn cells(resource: &ResourceInfo, obj: &Value, now: Timestamp) -> Vec<Value> {
    let p = Row { obj, now };
    match printer(resource) {
        Printer::Namespace => p.namespace(),
        Printer::Node => p.node(),
        Printer::Pod => p.pod(),
        Printer::Service => p.service(),
        Printer::Endpoints => p.endpoints(),
        Printer::ConfigMap => p.config_map(),
        Printer::Secret => p.secret(),
        Printer::Event => p.event(&CORE_EVENT),
        Printer::EventsV1 => p.event(&EVENTS_V1_EVENT),
        Printer::ServiceAccount => p.service_account(),
        Printer::Deployment => p.deployment(),
        Printer::ReplicaSet => p.replica_set(),
        Printer::DaemonSet => p.daemon_set(),
        Printer::StatefulSet => p.stateful_set(),
        Printer::Job => p.job(),
        Printer::CronJob => p.cron_job(),
        Printer::Lease => p.lease(),
        Printer::EndpointSlice => p.endpoint_slice(),
        Printer::RuntimeClass => p.runtime_class(),
        Printer::Function => p.function(),
        Printer::Role => p.role(),
        Printer::RoleBinding => p.role_binding(),
        Printer::ResourceQuota => p.resource_quota(),
        Printer::LimitRange => p.limit_range(),
        Printer::Default => vec![p.name(), p.age()],
    }
}

/// `duration.HumanDuration` of Kubernetes: about two significant figures (`45s`, `5m30s`, `3h2m`,
/// `2d5h`, `400d`, `3y20d`); `0s` for up to two seconds in the future, `<invalid>` beyond.
pub fn human_duration(d: SignedDuration) -> String {
    const MIN: i128 = 60_000_000_000;
    const HOUR: i128 = 60 * MIN;
    let nanos = d.as_nanos();
    let seconds = nanos / 1_000_000_000;
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / MIN;
    if minutes < 10 {
        return with_rest(minutes, "m", seconds % 60, "s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / HOUR;
    if hours < 8 {
        with_rest(hours, "h", minutes % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        with_rest(hours / 24, "d", hours % 24, "h")
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        with_rest(hours / 24 / 365, "y", (hours / 24) % 365, "d")
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

fn with_rest(major: i128, major_unit: &str, minor: i128, minor_unit: &str) -> String {
    if minor == 0 { format!("{major}{major_unit}") } else { format!("{major}{major_unit}{minor}{minor_unit}") }
}

enum Printer {
    Namespace,
    Node,
    Pod,
    Service,
    Endpoints,
    ConfigMap,
    Secret,
    Event,
    EventsV1,
    ServiceAccount,
    Deployment,
    ReplicaSet,
    DaemonSet,
    StatefulSet,
    Job,
    CronJob,
    Lease,
    EndpointSlice,
    RuntimeClass,
    Function,
    Role,
    RoleBinding,
    ResourceQuota,
    LimitRange,
    Default,
}

fn printer(resource: &ResourceInfo) -> Printer {
    match (resource.group, resource.kind) {
        ("", "Namespace") => Printer::Namespace,
        ("", "Node") => Printer::Node,
        ("", "Pod") => Printer::Pod,
        ("", "Service") => Printer::Service,
        ("", "Endpoints") => Printer::Endpoints,
        ("", "ConfigMap") => Printer::ConfigMap,
        ("", "Secret") => Printer::Secret,
        ("", "Event") => Printer::Event,
        ("events.k8s.io", "Event") => Printer::EventsV1,
        ("", "ServiceAccount") => Printer::ServiceAccount,
        ("apps", "Deployment") => Printer::Deployment,
        ("apps", "ReplicaSet") => Printer::ReplicaSet,
        ("apps", "DaemonSet") => Printer::DaemonSet,
        ("apps", "StatefulSet") => Printer::StatefulSet,
        ("batch", "Job") => Printer::Job,
        ("batch", "CronJob") => Printer::CronJob,
        ("coordination.k8s.io", "Lease") => Printer::Lease,
        ("discovery.k8s.io", "EndpointSlice") => Printer::EndpointSlice,
        ("node.k8s.io", "RuntimeClass") => Printer::RuntimeClass,
        ("wharf.dev", "Function") => Printer::Function,
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => Printer::Role,
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => Printer::RoleBinding,
        ("", "ResourceQuota") => Printer::ResourceQuota,
        ("", "LimitRange") => Printer::LimitRange,
        _ => Printer::Default,
    }
}

struct Col {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u8,
}

const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col { name, ty, format: "", description, priority: 0 }
}

const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col { name, ty, format: "", description, priority: 1 }
}

const NAME: Col = Col {
    name: "Name",
    ty: "string",
    format: "name",
    description: "Name must be unique within a namespace. Is required when creating resources, although some \
                  resources may allow a client to request the generation of an appropriate name automatically. \
                  Name is primarily intended for creation idempotence and configuration definition. Cannot be \
                  updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    priority: 0,
};
const AGE: Col = col(
    "Age",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not \
     guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It \
     is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: \
     https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
);
const CONTAINERS: Col = wide("Containers", "string", "Names of each container in the template.");
const IMAGES: Col = wide("Images", "string", "Images referenced by each container in the template.");
const SELECTOR: Col = wide("Selector", "string", "Label query over the pods the object manages.");

impl Printer {
    fn columns(&self) -> Vec<Col> {
        match self {
            Printer::Namespace => vec![NAME, col("Status", "string", "The status of the namespace"), AGE],
            Printer::Node => vec![
                NAME,
                col("Status", "string", "The status of the node"),
                col("Roles", "string", "The roles of the node"),
                AGE,
                col("Version", "string", "Kubelet Version reported by the node."),
                wide("Internal-IP", "string", "List of addresses reachable to the node."),
                wide("External-IP", "string", "List of addresses reachable to the node."),
                wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release."),
                wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r'."),
                wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node."),
            ],
            Printer::Pod => vec![
                NAME,
                col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
                col("Status", "string", "The aggregate status of the containers in this pod."),
                col(
                    "Restarts",
                    "string",
                    "The number of times the containers in this pod have been restarted and when the last \
                     container in this pod has restarted.",
                ),
                AGE,
                wide("IP", "string", "IP address allocated to the pod. Routable at least within the cluster."),
                wide("Node", "string", "NodeName is the name of the node the pod is bound to."),
                wide("Nominated Node", "string", "Name of the node the scheduler nominated for preemption."),
                wide("Readiness Gates", "string", "Readiness gates of the pod that are satisfied, of all."),
                wide("Runtime", "string", "The runtimes that ran the pod's containers: wasmtime, youki."),
            ],
            Printer::Service => vec![
                NAME,
                col("Type", "string", "How the Service is exposed: ClusterIP, NodePort, LoadBalancer, ExternalName."),
                col("Cluster-IP", "string", "The IP address assigned to the service, usually at random."),
                col("External-IP", "string", "IP addresses for which nodes in the cluster accept traffic too."),
                col("Port(s)", "string", "The list of ports that are exposed by this service."),
                AGE,
                wide("Selector", "string", "Route service traffic to pods with label keys and values matching this."),
            ],
            Printer::Endpoints => {
                vec![NAME, col("Endpoints", "string", "The set of all endpoints is the union of all subsets."), AGE]
            }
            Printer::ConfigMap => vec![NAME, col("Data", "string", "Data contains the configuration data."), AGE],
            Printer::Secret => vec![
                NAME,
                col("Type", "string", "Used to facilitate programmatic handling of secret data."),
                col("Data", "string", "Data contains the secret data."),
                AGE,
            ],
            Printer::Event | Printer::EventsV1 => vec![
                col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
                col("Type", "string", "Type of this event (Normal, Warning)."),
                col("Reason", "string", "This should be a short, machine understandable string for the transition."),
                col("Object", "string", "The object that this event is about."),
                wide("Subobject", "string", "The part of the object this event is about, if any."),
                wide("Source", "string", "The component reporting this event."),
                col("Message", "string", "A human-readable description of the status of this operation."),
                wide("First Seen", "string", "The time at which the event was first recorded."),
                wide("Count", "string", "The number of times this event has occurred."),
                Col { priority: 1, ..NAME },
            ],
            Printer::ServiceAccount => {
                vec![
                    NAME,
                    col("Secrets", "string", "Secrets is a list of the secrets in the same namespace to use."),
                    AGE,
                ]
            }
            Printer::Deployment => vec![
                NAME,
                col("Ready", "string", "Number of the pod with ready state"),
                col("Up-to-date", "string", "Total number of non-terminated pods that have the desired template."),
                col("Available", "string", "Total number of available pods (ready for at least minReadySeconds)."),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            Printer::ReplicaSet => vec![
                NAME,
                col("Desired", "integer", "Replicas is the number of desired replicas."),
                col("Current", "integer", "Replicas is the most recently observed number of replicas."),
                col("Ready", "integer", "The number of pods targeted by this ReplicaSet with a Ready Condition."),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            Printer::DaemonSet => vec![
                NAME,
                col("Desired", "integer", "The total number of nodes that should be running the daemon pod."),
                col("Current", "integer", "The number of nodes running at least one daemon pod that should."),
                col("Ready", "integer", "The number of nodes that should run the daemon pod and have it ready."),
                col("Up-to-date", "integer", "The total number of nodes running the updated daemon pod."),
                col(
                    "Available",
                    "integer",
                    "The number of nodes that should run the daemon pod and have it available.",
                ),
                col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit."),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            Printer::StatefulSet => {
                vec![NAME, col("Ready", "string", "Number of the pod with ready state"), AGE, CONTAINERS, IMAGES]
            }
            Printer::Job => vec![
                NAME,
                col("Status", "string", "Status of the job."),
                col("Completions", "string", "The number of pods which reached phase Succeeded."),
                col("Duration", "string", "Time required to complete the job."),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            Printer::CronJob => vec![
                NAME,
                col("Schedule", "string", "The schedule in Cron format."),
                col("Timezone", "string", "The time zone name for the given schedule."),
                col("Suspend", "boolean", "Whether subsequent executions are suspended."),
                col("Active", "integer", "The number of currently running jobs."),
                col(
                    "Last Schedule",
                    "string",
                    "Information when was the last time the job was successfully scheduled.",
                ),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            Printer::Lease => {
                vec![NAME, col("Holder", "string", "The identity of the holder of a current lease."), AGE]
            }
            Printer::EndpointSlice => vec![
                NAME,
                col("AddressType", "string", "The type of address carried by this EndpointSlice."),
                col("Ports", "string", "The network ports exposed by each endpoint in this slice."),
                col("Endpoints", "string", "A list of unique endpoints in this slice."),
                AGE,
            ],
            Printer::RuntimeClass => {
                vec![NAME, col("Handler", "string", "The underlying runtime and configuration to use."), AGE]
            }
            Printer::Function => vec![
                NAME,
                col("URL", "string", "URL the function answers on."),
                col("Ready", "string", "Instances ready to serve, of the current instances."),
                AGE,
                wide("Image", "string", "Image reference: a Wasm component artifact or a Linux OCI image."),
                wide("Min", "string", "Fewest instances; 0 lets the function scale to zero."),
                wide("Max", "string", "Most instances."),
                wide("Invocations", "integer", "Requests served since the function was created."),
            ],
            Printer::ResourceQuota => vec![
                NAME,
                AGE,
                col(
                    "Request",
                    "string",
                    "Request represents a minimum amount of cpu/memory that a container may consume.",
                ),
                col(
                    "Limit",
                    "string",
                    "Limits control the maximum amount of cpu/memory that a container may use independent of contention \
                     on the node.",
                ),
            ],
            Printer::LimitRange => vec![NAME, Col { name: "Created At", ty: "date", ..AGE }],
            Printer::Role => vec![NAME, Col { name: "Created At", ty: "date", ..AGE }],
            Printer::RoleBinding => vec![
                NAME,
                col(
                    "Role",
                    "string",
                    "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
                ),
                AGE,
                wide("Users", "string", "Users in the roleBinding"),
                wide("Groups", "string", "Groups in the roleBinding"),
                wide("ServiceAccounts", "string", "ServiceAccounts in the roleBinding"),
            ],
            Printer::Default => vec![NAME, AGE],
        }
    }
}

/// One object and the moment its ages are measured from.
struct Row<'a> {
    obj: &'a Value,
    now: Timestamp,
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn count(v: &Value) -> usize {
    v.as_object().map_or(0, |m| m.len())
}

fn or(s: &str, default: &str) -> String {
    if s.is_empty() { default.to_string() } else { s.to_string() }
}

fn time(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

fn is_true(v: &Value) -> bool {
    v.as_bool().unwrap_or(false)
}

/// The `status` ("True", "False") of the condition of `ty` in a conditions array, if any.
fn condition<'v>(conditions: &'v Value, ty: &str) -> Option<&'v str> {
    list(conditions).iter().find(|c| text(&c["type"]) == ty).map(|c| text(&c["status"]))
}

/// `labels.FormatLabels`: `k=v` sorted by key, `<none>` when empty.
fn format_labels(map: &Value) -> String {
    let mut pairs: Vec<String> =
        map.as_object().map(|m| m.iter().map(|(k, v)| format!("{k}={}", text(v))).collect()).unwrap_or_default();
    pairs.sort();
    if pairs.is_empty() { "<none>".into() } else { pairs.join(",") }
}

/// A `LabelSelector` as `labels.Selector.String()`: requirements sorted by key; empty for a
/// missing or empty selector; `Err` for one kube-apiserver could not convert.
fn selector_string(sel: &Value) -> Result<String, ()> {
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel["matchLabels"].as_object() {
        reqs.extend(m.iter().map(|(k, v)| (k.clone(), format!("{k}={}", text(v)))));
    }
    for expr in list(&sel["matchExpressions"]) {
        let key = text(&expr["key"]);
        let mut values: Vec<&str> = list(&expr["values"]).iter().map(text).collect();
        values.sort_unstable();
        let req = match (text(&expr["operator"]), values.is_empty()) {
            ("In", false) => format!("{key} in ({})", values.join(",")),
            ("NotIn", false) => format!("{key} notin ({})", values.join(",")),
            ("Exists", true) => key.to_string(),
            ("DoesNotExist", true) => format!("!{key}"),
            _ => return Err(()),
        };
        reqs.push((key.to_string(), req));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

/// `metav1.FormatLabelSelector`: `<none>` when empty, `<error>` when invalid.
fn format_label_selector(sel: &Value) -> String {
    match selector_string(sel) {
        Ok(s) if s.is_empty() => "<none>".into(),
        Ok(s) => s,
        Err(()) => "<error>".into(),
    }
}

/// Container names and images of a pod spec, each comma-joined.
fn containers_and_images(pod_spec: &Value) -> (String, String) {
    let containers = list(&pod_spec["containers"]);
    let names: Vec<&str> = containers.iter().map(|c| text(&c["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(&c["image"])).collect();
    (names.join(","), images.join(","))
}

/// `a,b,c + N more...` after `max` items; `<unset>` when there are none.
fn list_with_more(items: Vec<String>, max: usize) -> String {
    let total = items.len();
    let shown = items.into_iter().take(max).collect::<Vec<_>>().join(",");
    if total > max {
        format!("{shown} + {} more...", total - max)
    } else if shown.is_empty() {
        "<unset>".into()
    } else {
        shown
    }
}

fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// Field names of an Event in its two API groups; both print the same columns.
struct EventFields {
    involved: &'static str,
    message: &'static str,
    source: &'static str,
    first: &'static str,
    last: &'static str,
    count: &'static str,
    reporting_controller: &'static str,
}

const CORE_EVENT: EventFields = EventFields {
    involved: "involvedObject",
    message: "message",
    source: "source",
    first: "firstTimestamp",
    last: "lastTimestamp",
    count: "count",
    reporting_controller: "reportingComponent",
};

const EVENTS_V1_EVENT: EventFields = EventFields {
    involved: "regarding",
    message: "note",
    source: "deprecatedSource",
    first: "deprecatedFirstTimestamp",
    last: "deprecatedLastTimestamp",
    count: "deprecatedCount",
    reporting_controller: "reportingController",
};

impl Row<'_> {
    fn name(&self) -> Value {
        self.obj["metadata"]["name"].as_str().unwrap_or("").into()
    }

    fn since(&self, t: Option<Timestamp>) -> String {
        t.map_or_else(|| "<unknown>".into(), |t| human_duration(self.now.duration_since(t)))
    }

    fn age(&self) -> Value {
        self.since(time(&self.obj["metadata"]["creationTimestamp"])).into()
    }

    fn spec(&self) -> &Value {
        &self.obj["spec"]
    }

    fn status(&self) -> &Value {
        &self.obj["status"]
    }

    /// `spec.replicas` as the apps/v1 defaulting leaves it: 1 when unset.
    fn desired_replicas(&self) -> i64 {
        self.spec()["replicas"].as_i64().unwrap_or(1)
    }

    fn template_columns(&self, pod_spec: &Value, selector: Option<String>) -> Vec<Value> {
        let (names, images) = containers_and_images(pod_spec);
        let mut out = vec![names.into(), images.into()];
        out.extend(selector.map(Value::from));
        out
    }

    fn namespace(&self) -> Vec<Value> {
        // Namespaces are created Active; only deletion moves them to Terminating.
        let phase = or(text(&self.status()["phase"]), "Active");
        vec![self.name(), phase.into(), self.age()]
    }

    fn node(&self) -> Vec<Value> {
        let (spec, status) = (self.spec(), self.status());
        let mut state = match condition(&status["conditions"], "Ready") {
            Some("True") => "Ready".to_string(),
            Some(_) => "NotReady".to_string(),
            None => "Unknown".to_string(),
        };
        if is_true(&spec["unschedulable"]) {
            state.push_str(",SchedulingDisabled");
        }
        let mut roles: Vec<&str> = Vec::new();
        if let Some(labels) = self.obj["metadata"]["labels"].as_object() {
            for (k, v) in labels {
                if let Some(role) = k.strip_prefix("node-role.kubernetes.io/").filter(|r| !r.is_empty()) {
                    roles.push(role);
                } else if k == "kubernetes.io/role" && !text(v).is_empty() {
                    roles.push(text(v));
                }
            }
        }
        roles.sort_unstable();
        roles.dedup();
        let address = |ty: &str| {
            let found = list(&status["addresses"]).iter().find(|a| text(&a["type"]) == ty);
            or(found.map_or("", |a| text(&a["address"])), "<none>")
        };
        let info = &status["nodeInfo"];
        vec![
            self.name(),
            state.into(),
            or(&roles.join(","), "<none>").into(),
            self.age(),
            text(&info["kubeletVersion"]).into(),
            address("InternalIP").into(),
            address("ExternalIP").into(),
            or(text(&info["osImage"]), "<unknown>").into(),
            or(text(&info["kernelVersion"]), "<unknown>").into(),
            or(text(&info["containerRuntimeVersion"]), "<unknown>").into(),
        ]
    }

    fn pod(&self) -> Vec<Value> {
        let (spec, status) = (self.spec(), self.status());
        let init_specs = list(&spec["initContainers"]);
        let restartable =
            |name: &str| init_specs.iter().any(|c| text(&c["name"]) == name && text(&c["restartPolicy"]) == "Always");
        let sidecars = init_specs.iter().filter(|c| text(&c["restartPolicy"]) == "Always").count();
        let total = list(&spec["containers"]).len() + sidecars;
        let mut ready = 0;
        let mut restarts = 0;
        let mut sidecar_restarts = 0;
        let mut last_restart: Option<Timestamp> = None;
        let mut last_sidecar_restart: Option<Timestamp> = None;
        let finished = |c: &Value| time(&c["lastState"]["terminated"]["finishedAt"]);

        // The API server sets Pending on create, so a missing phase reads as Pending.
        let phase = or(text(&status["phase"]), "Pending");
        let mut reason = or(text(&status["reason"]), &phase);
        let gated = list(&status["conditions"])
            .iter()
            .any(|c| text(&c["type"]) == "PodScheduled" && text(&c["reason"]) == "SchedulingGated");
        if gated {
            reason = "SchedulingGated".into();
        }

        let mut initializing = false;
        for (i, c) in list(&status["initContainerStatuses"]).iter().enumerate() {
            restarts += int(&c["restartCount"]);
            last_restart = last_restart.max(finished(c));
            let is_sidecar = restartable(text(&c["name"]));
            if is_sidecar {
                sidecar_restarts += int(&c["restartCount"]);
                last_sidecar_restart = last_sidecar_restart.max(finished(c));
            }
            let (terminated, waiting) = (&c["state"]["terminated"], &c["state"]["waiting"]);
            if terminated.is_object() && int(&terminated["exitCode"]) == 0 {
                continue;
            }
            if is_sidecar && is_true(&c["started"]) {
                if is_true(&c["ready"]) {
                    ready += 1;
                }
                continue;
            }
            reason = if terminated.is_object() {
                match text(&terminated["reason"]) {
                    "" if int(&terminated["signal"]) != 0 => format!("Init:Signal:{}", int(&terminated["signal"])),
                    "" => format!("Init:ExitCode:{}", int(&terminated["exitCode"])),
                    r => format!("Init:{r}"),
                }
            } else if !matches!(text(&waiting["reason"]), "" | "PodInitializing") {
                format!("Init:{}", text(&waiting["reason"]))
            } else {
                format!("Init:{i}/{}", init_specs.len())
            };
            initializing = true;
            break;
        }

        if !initializing || condition(&status["conditions"], "Initialized") == Some("True") {
            restarts = sidecar_restarts;
            last_restart = last_sidecar_restart;
            let mut has_running = false;
            for c in list(&status["containerStatuses"]).iter().rev() {
                restarts += int(&c["restartCount"]);
                last_restart = last_restart.max(finished(c));
                let (terminated, waiting) = (&c["state"]["terminated"], &c["state"]["waiting"]);
                if !text(&waiting["reason"]).is_empty() {
                    reason = text(&waiting["reason"]).into();
                } else if !text(&terminated["reason"]).is_empty() {
                    reason = text(&terminated["reason"]).into();
                } else if terminated.is_object() {
                    reason = match int(&terminated["signal"]) {
                        0 => format!("ExitCode:{}", int(&terminated["exitCode"])),
                        signal => format!("Signal:{signal}"),
                    };
                } else if is_true(&c["ready"]) && c["state"]["running"].is_object() {
                    has_running = true;
                    ready += 1;
                }
            }
            if reason == "Completed" && has_running {
                let pod_ready = condition(&status["conditions"], "Ready") == Some("True");
                reason = if pod_ready { "Running" } else { "NotReady" }.into();
            }
        }

        if self.obj["metadata"]["deletionTimestamp"].is_string() {
            if text(&status["reason"]) == "NodeLost" {
                reason = "Unknown".into();
            } else if !matches!(phase.as_str(), "Succeeded" | "Failed") {
                reason = "Terminating".into();
            }
        }

        let restarts = match last_restart {
            Some(t) if restarts != 0 => format!("{restarts} ({} ago)", self.since(Some(t))),
            _ => restarts.to_string(),
        };
        let ip = list(&status["podIPs"]).first().map_or_else(|| text(&status["podIP"]), |ip| text(&ip["ip"]));
        let gates = list(&spec["readinessGates"]);
        let readiness_gates = if gates.is_empty() {
            "<none>".to_string()
        } else {
            let met =
                gates.iter().filter(|g| condition(&status["conditions"], text(&g["conditionType"])) == Some("True"));
            format!("{}/{}", met.count(), gates.len())
        };
        vec![
            self.name(),
            format!("{ready}/{total}").into(),
            reason.into(),
            restarts.into(),
            self.age(),
            or(ip, "<none>").into(),
            or(text(&spec["nodeName"]), "<none>").into(),
            or(text(&status["nominatedNodeName"]), "<none>").into(),
            readiness_gates.into(),
            pod_runtimes(self.obj).into(),
        ]
    }

    fn service(&self) -> Vec<Value> {
        let (spec, status) = (self.spec(), self.status());
        let ty = or(text(&spec["type"]), "ClusterIP");
        let cluster_ip = list(&spec["clusterIPs"]).first().map_or_else(|| text(&spec["clusterIP"]), text);
        let external_ips: Vec<&str> = list(&spec["externalIPs"]).iter().map(text).collect();
        let external_ip = match ty.as_str() {
            "ClusterIP" | "NodePort" => or(&external_ips.join(","), "<none>"),
            "LoadBalancer" => {
                let mut ingress: Vec<&str> = list(&status["loadBalancer"]["ingress"])
                    .iter()
                    .map(|i| if text(&i["ip"]).is_empty() { text(&i["hostname"]) } else { text(&i["ip"]) })
                    .filter(|s| !s.is_empty())
                    .collect();
                ingress.sort_unstable();
                ingress.dedup();
                ingress.extend(external_ips);
                or(&ingress.join(","), "<pending>")
            }
            "ExternalName" => text(&spec["externalName"]).to_string(),
            _ => "<unknown>".to_string(),
        };
        let ports: Vec<String> = list(&spec["ports"])
            .iter()
            .map(|p| {
                let protocol = or(text(&p["protocol"]), "TCP");
                match int(&p["nodePort"]) {
                    0 => format!("{}/{protocol}", int(&p["port"])),
                    node_port => format!("{}:{node_port}/{protocol}", int(&p["port"])),
                }
            })
            .collect();
        vec![
            self.name(),
            ty.into(),
            or(cluster_ip, "<none>").into(),
            external_ip.into(),
            or(&ports.join(","), "<none>").into(),
            self.age(),
            format_labels(&spec["selector"]).into(),
        ]
    }

    fn endpoints(&self) -> Vec<Value> {
        let subsets = list(&self.obj["subsets"]);
        let formatted = if subsets.is_empty() {
            "<none>".to_string()
        } else {
            let mut all = Vec::new();
            for ss in subsets {
                let addresses = list(&ss["addresses"]);
                let ports = list(&ss["ports"]);
                if ports.is_empty() {
                    all.extend(addresses.iter().map(|a| text(&a["ip"]).to_string()));
                }
                for port in ports {
                    all.extend(addresses.iter().map(|a| join_host_port(text(&a["ip"]), int(&port["port"]))));
                }
            }
            let total = all.len();
            let shown = all.into_iter().take(3).collect::<Vec<_>>().join(",");
            if total > 3 { format!("{shown} + {} more...", total - 3) } else { shown }
        };
        vec![self.name(), formatted.into(), self.age()]
    }

    fn config_map(&self) -> Vec<Value> {
        let data = count(&self.obj["data"]) + count(&self.obj["binaryData"]);
        vec![self.name(), (data as i64).into(), self.age()]
    }

    fn secret(&self) -> Vec<Value> {
        // `stringData` is write-only and merged into `data`; count its keys in case a write kept it.
        let mut keys: Vec<&String> =
            ["data", "stringData"].iter().filter_map(|f| self.obj[*f].as_object()).flat_map(|m| m.keys()).collect();
        keys.sort_unstable();
        keys.dedup();
        let ty = or(text(&self.obj["type"]), "Opaque");
        vec![self.name(), ty.into(), (keys.len() as i64).into(), self.age()]
    }

    fn event(&self, f: &EventFields) -> Vec<Value> {
        let obj = self.obj;
        let first = match time(&obj[f.first]) {
            Some(t) => self.since(Some(t)),
            None => self.since(time(&obj["eventTime"])),
        };
        let mut last = match time(&obj[f.last]) {
            Some(t) => self.since(Some(t)),
            None => first.clone(),
        };
        let mut count = int(&obj[f.count]);
        if obj["series"].is_object() {
            last = self.since(time(&obj["series"]["lastObservedTime"]));
            count = int(&obj["series"]["count"]);
        } else if count == 0 {
            count = 1;
        }
        let involved = &obj[f.involved];
        let kind = text(&involved["kind"]).to_lowercase();
        let target = match text(&involved["name"]) {
            "" => kind,
            name => format!("{kind}/{name}"),
        };
        let component = or(text(&obj[f.source]["component"]), text(&obj[f.reporting_controller]));
        let instance = or(text(&obj[f.source]["host"]), text(&obj["reportingInstance"]));
        let source = if instance.is_empty() { component } else { format!("{component}, {instance}") };
        vec![
            last.into(),
            text(&obj["type"]).into(),
            text(&obj["reason"]).into(),
            target.into(),
            text(&involved["fieldPath"]).into(),
            source.into(),
            text(&obj[f.message]).trim().into(),
            first.into(),
            count.into(),
            self.name(),
        ]
    }

    fn service_account(&self) -> Vec<Value> {
        vec![self.name(), (list(&self.obj["secrets"]).len() as i64).into(), self.age()]
    }

    fn deployment(&self) -> Vec<Value> {
        let (spec, status) = (self.spec(), self.status());
        let ready = format!("{}/{}", int(&status["readyReplicas"]), self.desired_replicas());
        // Deployments print the bare selector string, without FormatLabelSelector's `<none>`.
        let selector = selector_string(&spec["selector"]).unwrap_or_else(|()| "<invalid>".into());
        let mut out = vec![
            self.name(),
            ready.into(),
            int(&status["updatedReplicas"]).into(),
            int(&status["availableReplicas"]).into(),
            self.age(),
        ];
        out.extend(self.template_columns(&spec["template"]["spec"], Some(selector)));
        out
    }

    fn replica_set(&self) -> Vec<Value> {
        let (spec, status) = (self.spec(), self.status());
        let mut out = vec![
            self.name(),
            self.desired_replicas().into(),
            int(&status["replicas"]).into(),
            int(&status["readyReplicas"]).into(),
            self.age(),
        ];
        out.extend(self.template_columns(&spec["template"]["spec"], Some(format_label_selector(&spec["selector"]))));
        out
    }

    fn daemon_set(&self) -> Vec<Value> {
        let (spec, status) = (self.spec(), self.status());
        let mut out = vec![
            self.name(),
            int(&status["desiredNumberScheduled"]).into(),
            int(&status["currentNumberScheduled"]).into(),
            int(&status["numberReady"]).into(),
            int(&status["updatedNumberScheduled"]).into(),
            int(&status["numberAvailable"]).into(),
            format_labels(&spec["template"]["spec"]["nodeSelector"]).into(),
            self.age(),
        ];
        out.extend(self.template_columns(&spec["template"]["spec"], Some(format_label_selector(&spec["selector"]))));
        out
    }

    fn stateful_set(&self) -> Vec<Value> {
        let ready = format!("{}/{}", int(&self.status()["readyReplicas"]), self.desired_replicas());
        let mut out = vec![self.name(), ready.into(), self.age()];
        out.extend(self.template_columns(&self.spec()["template"]["spec"], None));
        out
    }

    fn job(&self) -> Vec<Value> {
        let (spec, status) = (self.spec(), self.status());
        let succeeded = int(&status["succeeded"]);
        let completions = match spec["completions"].as_i64() {
            Some(c) => format!("{succeeded}/{c}"),
            None => match int(&spec["parallelism"]) {
                p if p > 1 => format!("{succeeded}/1 of {p}"),
                _ => format!("{succeeded}/1"),
            },
        };
        let duration = match (time(&status["startTime"]), time(&status["completionTime"])) {
            (None, _) => String::new(),
            (Some(start), None) => self.since(Some(start)),
            (Some(start), Some(end)) => human_duration(end.duration_since(start)),
        };
        let conditions = &status["conditions"];
        let has = |ty: &str| condition(conditions, ty) == Some("True");
        let state = if has("Complete") {
            "Complete"
        } else if has("Failed") {
            "Failed"
        } else if self.obj["metadata"]["deletionTimestamp"].is_string() {
            "Terminating"
        } else if has("Suspended") {
            "Suspended"
        } else if has("FailureTarget") {
            "FailureTarget"
        } else {
            "Running"
        };
        let mut out = vec![self.name(), state.into(), completions.into(), duration.into(), self.age()];
        out.extend(self.template_columns(&spec["template"]["spec"], Some(format_label_selector(&spec["selector"]))));
        out
    }

    fn cron_job(&self) -> Vec<Value> {
        let (spec, status) = (self.spec(), self.status());
        let last_schedule = match time(&status["lastScheduleTime"]) {
            Some(t) => self.since(Some(t)),
            None => "<none>".into(),
        };
        // batch/v1 defaulting sets `suspend: false`.
        let suspend = if is_true(&spec["suspend"]) { "True" } else { "False" };
        let job_spec = &spec["jobTemplate"]["spec"];
        let mut out = vec![
            self.name(),
            text(&spec["schedule"]).into(),
            or(text(&spec["timeZone"]), "<none>").into(),
            suspend.into(),
            (list(&status["active"]).len() as i64).into(),
            last_schedule.into(),
            self.age(),
        ];
        out.extend(
            self.template_columns(&job_spec["template"]["spec"], Some(format_label_selector(&job_spec["selector"]))),
        );
        out
    }

    fn lease(&self) -> Vec<Value> {
        vec![self.name(), text(&self.spec()["holderIdentity"]).into(), self.age()]
    }

    fn endpoint_slice(&self) -> Vec<Value> {
        let ports = list(&self.obj["ports"])
            .iter()
            .map(|p| match (p["port"].as_i64(), p["name"].as_str()) {
                (Some(port), _) => port.to_string(),
                (None, Some(name)) => name.to_string(),
                (None, None) => "*".to_string(),
            })
            .collect();
        let addresses = list(&self.obj["endpoints"])
            .iter()
            .flat_map(|e| list(&e["addresses"]).iter().map(|a| text(a).to_string()))
            .collect();
        vec![
            self.name(),
            text(&self.obj["addressType"]).into(),
            list_with_more(ports, 3).into(),
            list_with_more(addresses, 3).into(),
            self.age(),
        ]
    }

    fn runtime_class(&self) -> Vec<Value> {
        vec![self.name(), text(&self.obj["handler"]).into(), self.age()]
    }

    /// `pods: 1/2, requests.cpu: 500m/1` (used/hard, sorted by name); `limits.*` in the Limit column.
    fn resource_quota(&self) -> Vec<Value> {
        let status = self.status();
        let (mut request, mut limit) = (Vec::new(), Vec::new());
        let hard: std::collections::BTreeMap<&String, &Value> =
            status["hard"].as_object().into_iter().flatten().collect();
        for (name, hard) in hard {
            let used = or(text(&status["used"][name.as_str()]), "0");
            let cell = format!("{name}: {used}/{}", text(hard));
            if name.split('.').next() == Some("limits") && name.contains('.') {
                limit.push(cell);
            } else {
                request.push(cell);
            }
        }
        vec![self.name(), self.age(), request.join(", ").into(), limit.join(", ").into()]
    }

    /// The creation time in RFC 3339, UTC.
    fn limit_range(&self) -> Vec<Value> {
        let created =
            time(&self.obj["metadata"]["creationTimestamp"]).map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        vec![self.name(), created.unwrap_or_default().into()]
    }

    /// Roles and ClusterRoles: NAME, CREATED AT (RFC 3339).
    fn role(&self) -> Vec<Value> {
        let created =
            time(&self.obj["metadata"]["creationTimestamp"]).map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        vec![self.name(), created.unwrap_or_default().into()]
    }

    /// Bindings: NAME, ROLE (`ClusterRole/view`), AGE, and with -o wide their users, groups and
    /// ServiceAccounts (`namespace/name`).
    fn role_binding(&self) -> Vec<Value> {
        let role = &self.obj["roleRef"];
        let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
        for subject in self.obj["subjects"].as_array().into_iter().flatten() {
            let name = text(&subject["name"]);
            match text(&subject["kind"]) {
                "User" => users.push(name.to_string()),
                "Group" => groups.push(name.to_string()),
                "ServiceAccount" => accounts.push(format!("{}/{name}", text(&subject["namespace"]))),
                _ => {}
            }
        }
        vec![
            self.name(),
            format!("{}/{}", text(&role["kind"]), text(&role["name"])).into(),
            self.age(),
            users.join(", ").into(),
            groups.join(", ").into(),
            accounts.join(", ").into(),
        ]
    }

    fn function(&self) -> Vec<Value> {
        let (spec, status) = (self.spec(), self.status());
        let bound = |v: &Value| v.as_i64().map_or_else(|| "<unset>".to_string(), |n| n.to_string());
        vec![
            self.name(),
            or(text(&status["url"]), "<none>").into(),
            format!("{}/{}", int(&status["readyReplicas"]), int(&status["replicas"])).into(),
            self.age(),
            or(text(&spec["image"]), "<none>").into(),
            bound(&spec["scale"]["minReplicas"]).into(),
            bound(&spec["scale"]["maxReplicas"]).into(),
            int(&status["invocations"]).into(),
        ]
    }
}

/// The RUNTIME cell of a pod: the runtimes the agent recorded for its containers, or `<none>`.
/// The runtimes that ran the pod's containers, from the scheme of each container ID the agent
/// reports (`wasmtime://…`, `youki://…`), in order and without repeats.
fn pod_runtimes(pod: &Value) -> String {
    let mut runtimes: Vec<&str> = Vec::new();
    for field in ["initContainerStatuses", "containerStatuses"] {
        for status in pod["status"][field].as_array().into_iter().flatten() {
            if let Some((scheme, _)) = status["containerID"].as_str().and_then(|id| id.split_once("://"))
                && !runtimes.contains(&scheme)
            {
                runtimes.push(scheme);
            }
        }
    }
    if runtimes.is_empty() { "<none>".to_string() } else { runtimes.join(",") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::kinds::{RESOURCES, lookup};

    const NOW: &str = "2025-06-01T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    /// `NOW` minus `secs` seconds, RFC 3339.
    fn ago(secs: i64) -> String {
        (now() - SignedDuration::from_secs(secs)).to_string()
    }

    fn res(group: &str, plural: &str) -> &'static ResourceInfo {
        lookup(group, "v1", plural).unwrap()
    }

    fn row(group: &str, plural: &str, obj: &Value) -> Vec<Value> {
        let resource = res(group, plural);
        let cells = cells(resource, obj, now());
        assert_eq!(cells.len(), columns(resource).len(), "{plural}: cells and columns differ");
        cells
    }

    fn names(resource: &ResourceInfo, priority: u64) -> Vec<String> {
        columns(resource)
            .iter()
            .filter(|c| c["priority"] == priority)
            .map(|c| c["name"].as_str().unwrap().to_uppercase())
            .collect()
    }

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "creationTimestamp": ago(3600 * 26)})
    }

    fn pod(status: Value) -> Value {
        json!({
            "metadata": meta("web"),
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "a"}, {"name": "log", "image": "b"}]},
            "status": status,
        })
    }

    fn running(ready: bool) -> Value {
        json!({"ready": ready, "started": true, "restartCount": 0, "state": {"running": {"startedAt": ago(600)}}})
    }

    /// A realistic object of every kind the table knows.
    fn sample(resource: &ResourceInfo) -> Value {
        let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "app", "image": "registry/app:1"}, {"name": "side", "image": "registry/side:2"}]}});
        let selector = json!({"matchLabels": {"app": "web"}});
        let mut obj = match (resource.group, resource.kind) {
            ("", "Namespace") => json!({"status": {"phase": "Active"}}),
            ("", "Node") => json!({"spec": {}, "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0-wharf", "osImage": "Debian GNU/Linux 12",
                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "wharf://0.1.0"}}}),
            ("", "Pod") => pod(json!({"phase": "Running", "podIPs": [{"ip": "10.1.0.4"}],
                "containerStatuses": [running(true), running(true)]})),
            ("", "Service") => json!({"spec": {"type": "ClusterIP", "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web"}}}),
            ("", "Endpoints") => json!({"subsets": [{"addresses": [{"ip": "10.1.0.4"}], "ports": [{"port": 8080}]}]}),
            ("", "ConfigMap") => json!({"data": {"a": "1", "b": "2"}}),
            ("", "Secret") => json!({"type": "Opaque", "data": {"a": "MQ=="}}),
            ("", "Event") => json!({"involvedObject": {"kind": "Pod", "name": "web"}, "type": "Normal",
                "reason": "Started", "message": "Started container app", "firstTimestamp": ago(60),
                "lastTimestamp": ago(30), "count": 2, "source": {"component": "wharf-agent", "host": "n1"}}),
            ("events.k8s.io", "Event") => json!({"regarding": {"kind": "Pod", "name": "web"}, "type": "Normal",
                "reason": "Scheduled", "note": "Assigned default/web to n1", "eventTime": ago(90),
                "reportingController": "wharf-scheduler", "reportingInstance": "wharf-scheduler-1"}),
            ("", "ServiceAccount") => json!({"secrets": []}),
            ("apps", "Deployment") | ("apps", "ReplicaSet") | ("apps", "StatefulSet") => {
                json!({"spec": {"replicas": 3, "selector": selector, "template": template},
                    "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}})
            }
            ("apps", "DaemonSet") => json!({"spec": {"selector": selector, "template": template},
                "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                    "updatedNumberScheduled": 2, "numberAvailable": 1}}),
            ("batch", "Job") => json!({"spec": {"completions": 1, "parallelism": 1, "selector": selector,
                "template": template}, "status": {"startTime": ago(100), "active": 1}}),
            ("batch", "CronJob") => json!({"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {
                "template": template}}}, "status": {"lastScheduleTime": ago(120)}}),
            ("coordination.k8s.io", "Lease") => json!({"spec": {"holderIdentity": "wharf-1"}}),
            ("discovery.k8s.io", "EndpointSlice") => json!({"addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.1.0.4"]}]}),
            ("node.k8s.io", "RuntimeClass") => json!({"handler": "wasmtime"}),
            ("wharf.dev", "Function") => json!({"spec": {"image": "registry/hello:1",
                "scale": {"minReplicas": 0, "maxReplicas": 5}}, "status": {"url": "http://hello.default.wharf",
                "replicas": 1, "readyReplicas": 1, "invocations": 42}}),
            _ => json!({}),
        };
        obj["metadata"] = meta("sample");
        obj
    }

    #[test]
    fn every_kind_has_as_many_cells_as_columns() {
        for resource in RESOURCES {
            let columns = columns(resource);
            for c in &columns {
                let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
                assert_eq!(keys, ["name", "type", "format", "description", "priority"]);
            }
            let full = cells(resource, &sample(resource), now());
            assert_eq!(full.len(), columns.len(), "{}", resource.kind);
            assert!(full.iter().all(|c| c.is_string() || c.is_i64()), "{}: {full:?}", resource.kind);
            // An object with nothing set still prints a full row.
            assert_eq!(cells(resource, &json!({}), now()).len(), columns.len(), "{}", resource.kind);
        }
    }

    #[test]
    fn column_names_and_wide_columns_per_kind() {
        let expect = |group: &str, plural: &str, normal: &str, wide: &str| {
            let r = res(group, plural);
            assert_eq!(names(r, 0).join(" "), normal, "{plural}");
            assert_eq!(names(r, 1).join(" "), wide, "{plural}");
        };
        expect("", "namespaces", "NAME STATUS AGE", "");
        expect(
            "",
            "nodes",
            "NAME STATUS ROLES AGE VERSION",
            "INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME",
        );
        expect("", "pods", "NAME READY STATUS RESTARTS AGE", "IP NODE NOMINATED NODE READINESS GATES RUNTIME");
        expect("", "services", "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE", "SELECTOR");
        expect("", "endpoints", "NAME ENDPOINTS AGE", "");
        expect("", "configmaps", "NAME DATA AGE", "");
        expect("", "secrets", "NAME TYPE DATA AGE", "");
        expect("", "events", "LAST SEEN TYPE REASON OBJECT MESSAGE", "SUBOBJECT SOURCE FIRST SEEN COUNT NAME");
        expect(
            "events.k8s.io",
            "events",
            "LAST SEEN TYPE REASON OBJECT MESSAGE",
            "SUBOBJECT SOURCE FIRST SEEN COUNT NAME",
        );
        expect("", "serviceaccounts", "NAME SECRETS AGE", "");
        expect("apps", "deployments", "NAME READY UP-TO-DATE AVAILABLE AGE", "CONTAINERS IMAGES SELECTOR");
        expect("apps", "replicasets", "NAME DESIRED CURRENT READY AGE", "CONTAINERS IMAGES SELECTOR");
        expect(
            "apps",
            "daemonsets",
            "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE",
            "CONTAINERS IMAGES SELECTOR",
        );
        expect("apps", "statefulsets", "NAME READY AGE", "CONTAINERS IMAGES");
        expect("batch", "jobs", "NAME STATUS COMPLETIONS DURATION AGE", "CONTAINERS IMAGES SELECTOR");
        expect(
            "batch",
            "cronjobs",
            "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE",
            "CONTAINERS IMAGES SELECTOR",
        );
        expect("coordination.k8s.io", "leases", "NAME HOLDER AGE", "");
        expect("discovery.k8s.io", "endpointslices", "NAME ADDRESSTYPE PORTS ENDPOINTS AGE", "");
        expect("node.k8s.io", "runtimeclasses", "NAME HANDLER AGE", "");
        expect("wharf.dev", "functions", "NAME URL READY AGE", "IMAGE MIN MAX INVOCATIONS");
    }

    #[test]
    fn name_column_has_name_format() {
        let cols = columns(res("", "pods"));
        assert_eq!(cols[0]["format"], "name");
        assert_eq!(cols[1]["format"], "");
        assert_eq!(cols[5]["priority"], 1);
    }

    #[test]
    fn unknown_kind_prints_name_and_age() {
        let other = ResourceInfo {
            group: "example.com",
            version: "v1",
            kind: "Widget",
            plural: "widgets",
            singular: "widget",
            namespaced: true,
            short_names: &[],
            categories: &[],
            subresources: &[],
            definition: "com.example.v1.Widget",
        };
        assert_eq!(names(&other, 0), ["NAME", "AGE"]);
        let obj = json!({"metadata": {"name": "w", "creationTimestamp": ago(300)}});
        assert_eq!(cells(&other, &obj, now()), [json!("w"), json!("5m")]);
    }

    #[test]
    fn running_pod_with_a_restarted_container() {
        let mut restarted = running(false);
        restarted["restartCount"] = json!(2);
        restarted["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(180)}});
        let mut first = running(true);
        first["containerID"] = json!("wasmtime://a");
        restarted["containerID"] = json!("youki://b");
        let obj = pod(json!({"phase": "Running", "podIP": "10.1.0.7", "containerStatuses": [first, restarted]}));
        let c = row("", "pods", &obj);
        assert_eq!(c[..5], [json!("web"), json!("1/2"), json!("Running"), json!("2 (3m ago)"), json!("26h")]);
        assert_eq!(c[5..], [json!("10.1.0.7"), json!("n1"), json!("<none>"), json!("<none>"), json!("wasmtime,youki")]);
    }

    #[test]
    fn restarts_without_a_finish_time_are_a_bare_count() {
        let mut restarted = running(true);
        restarted["restartCount"] = json!(4);
        let c = row("", "pods", &pod(json!({"phase": "Running", "containerStatuses": [running(true), restarted]})));
        assert_eq!(c[1], "2/2");
        assert_eq!(c[3], "4");
    }

    #[test]
    fn crash_looping_pod_shows_the_waiting_reason() {
        let crashing = json!({"ready": false, "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 2, "finishedAt": ago(40)}}});
        let c = row("", "pods", &pod(json!({"phase": "Running", "containerStatuses": [running(true), crashing]})));
        assert_eq!(c[1..4], [json!("1/2"), json!("CrashLoopBackOff"), json!("5 (40s ago)")]);
    }

    #[test]
    fn succeeded_pod_is_completed() {
        let done = json!({"ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": ago(30)}}});
        let c = row("", "pods", &pod(json!({"phase": "Succeeded", "containerStatuses": [done.clone(), done]})));
        assert_eq!(c[1..4], [json!("0/2"), json!("Completed"), json!("0")]);
    }

    #[test]
    fn completed_container_beside_a_running_one_reads_running_or_not_ready() {
        let done = json!({"ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        let mut status = json!({"phase": "Running", "containerStatuses": [running(true), done]});
        assert_eq!(row("", "pods", &pod(status.clone()))[2], "NotReady");
        status["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        assert_eq!(row("", "pods", &pod(status))[2], "Running");
    }

    #[test]
    fn terminated_container_without_reason_shows_exit_code_or_signal() {
        let exit = json!({"state": {"terminated": {"exitCode": 3}}});
        let signal = json!({"state": {"terminated": {"exitCode": 137, "signal": 9}}});
        assert_eq!(row("", "pods", &pod(json!({"phase": "Failed", "containerStatuses": [exit]})))[2], "ExitCode:3");
        assert_eq!(row("", "pods", &pod(json!({"phase": "Failed", "containerStatuses": [signal]})))[2], "Signal:9");
    }

    #[test]
    fn deleted_pod_is_terminating_unless_finished_or_node_lost() {
        let mut obj = pod(json!({"phase": "Running", "containerStatuses": [running(true), running(true)]}));
        obj["metadata"]["deletionTimestamp"] = json!(ago(5));
        assert_eq!(row("", "pods", &obj)[2], "Terminating");
        obj["status"]["reason"] = json!("NodeLost");
        assert_eq!(row("", "pods", &obj)[2], "Unknown");
        obj["status"] = json!({"phase": "Succeeded"});
        assert_eq!(row("", "pods", &obj)[2], "Succeeded");
        obj["metadata"].as_object_mut().unwrap().remove("deletionTimestamp");
        obj["status"] = json!({"phase": "Unknown", "reason": "NodeLost"});
        assert_eq!(row("", "pods", &obj)[2], "NodeLost");
    }

    fn init_pod(init_status: Value) -> Value {
        let mut obj = pod(json!({"phase": "Pending", "initContainerStatuses": [init_status],
            "containerStatuses": [
                {"ready": false, "state": {"waiting": {"reason": "PodInitializing"}}},
                {"ready": false, "state": {"waiting": {"reason": "PodInitializing"}}}]}));
        obj["spec"]["initContainers"] = json!([{"name": "setup", "image": "i"}]);
        obj
    }

    #[test]
    fn init_container_states() {
        let running_init = json!({"name": "setup", "ready": false, "restartCount": 0,
            "state": {"running": {"startedAt": ago(5)}}});
        assert_eq!(row("", "pods", &init_pod(running_init))[1..3], [json!("0/2"), json!("Init:0/1")]);

        let failed = json!({"name": "setup", "restartCount": 1, "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(20)}}});
        assert_eq!(row("", "pods", &init_pod(failed))[2..4], [json!("Init:Error"), json!("1 (20s ago)")]);

        let crashing = json!({"name": "setup", "state": {"waiting": {"reason": "CrashLoopBackOff"}}});
        assert_eq!(row("", "pods", &init_pod(crashing))[2], "Init:CrashLoopBackOff");

        let no_reason = json!({"name": "setup", "state": {"terminated": {"exitCode": 7}}});
        assert_eq!(row("", "pods", &init_pod(no_reason))[2], "Init:ExitCode:7");

        let done = json!({"name": "setup", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        assert_eq!(row("", "pods", &init_pod(done))[2], "PodInitializing");
    }

    #[test]
    fn sidecar_init_containers_count_as_containers() {
        let mut obj = pod(json!({"phase": "Running",
            "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 1,
                "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(400)}}}],
            "containerStatuses": [running(true), running(true)]}));
        obj["spec"]["initContainers"] = json!([{"name": "proxy", "image": "p", "restartPolicy": "Always"}]);
        assert_eq!(row("", "pods", &obj)[1..4], [json!("3/3"), json!("Running"), json!("1 (6m40s ago)")]);
    }

    #[test]
    fn pod_readiness_gates_runtime_and_scheduling_gate() {
        let mut obj = pod(json!({"phase": "Pending", "nominatedNodeName": "n2",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"},
                {"type": "example.com/lb", "status": "True"}]}));
        obj["spec"]["readinessGates"] =
            json!([{"conditionType": "example.com/lb"}, {"conditionType": "example.com/x"}]);
        let c = row("", "pods", &obj);
        assert_eq!(c[2], "SchedulingGated");
        assert_eq!(c[5..], [json!("<none>"), json!("n1"), json!("n2"), json!("1/2"), json!("<none>")]);
        let statuses = json!({"status": {"initContainerStatuses": [{"containerID": "youki://i"}],
            "containerStatuses": [{"containerID": "wasmtime://a"}, {"containerID": "youki://b"}]}});
        assert_eq!(pod_runtimes(&statuses), "youki,wasmtime");
    }

    #[test]
    fn missing_pod_phase_reads_pending() {
        assert_eq!(
            row("", "pods", &json!({"metadata": meta("p"), "spec": {"containers": [{"name": "a"}]}}))[1..3],
            [json!("0/1"), json!("Pending")]
        );
    }

    #[test]
    fn deployment_and_workloads() {
        let r = res("apps", "deployments");
        let c = row("apps", "deployments", &sample(r));
        assert_eq!(c[1..5], [json!("2/3"), json!(3), json!(2), json!("26h")]);
        assert_eq!(c[5..], [json!("app,side"), json!("registry/app:1,registry/side:2"), json!("app=web")]);

        let c = row("apps", "replicasets", &sample(res("apps", "replicasets")));
        assert_eq!(c[1..4], [json!(3), json!(3), json!(2)]);
        let c = row("apps", "statefulsets", &sample(res("apps", "statefulsets")));
        assert_eq!(c[1], "2/3");
        let c = row("apps", "daemonsets", &sample(res("apps", "daemonsets")));
        assert_eq!(c[1..8], [json!(2), json!(2), json!(1), json!(2), json!(1), json!("<none>"), json!("26h")]);

        let defaulted = json!({"metadata": meta("d"), "spec": {"template": {"spec": {"containers": []}}}});
        assert_eq!(row("apps", "deployments", &defaulted)[1], "0/1");
        assert_eq!(row("apps", "deployments", &defaulted)[7], "");
    }

    #[test]
    fn label_selectors() {
        let sel = json!({"matchLabels": {"tier": "web", "app": "shop"}, "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "zone", "operator": "NotIn", "values": ["a"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "owner", "operator": "Exists"}]});
        assert_eq!(format_label_selector(&sel), "app=shop,!canary,env in (dev,prod),owner,tier=web,zone notin (a)");
        assert_eq!(format_label_selector(&Value::Null), "<none>");
        assert_eq!(format_label_selector(&json!({})), "<none>");
        assert_eq!(format_label_selector(&json!({"matchExpressions": [{"key": "a", "operator": "Near"}]})), "<error>");
        assert_eq!(format_labels(&json!({"b": "2", "a": "1"})), "a=1,b=2");
    }

    #[test]
    fn service_ports_and_addresses() {
        let obj = json!({"metadata": meta("web"), "spec": {"type": "NodePort", "clusterIPs": ["10.96.4.2"],
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "nodePort": 30443, "protocol": "TCP"}],
            "selector": {"app": "web"}}});
        assert_eq!(
            row("", "services", &obj),
            [
                json!("web"),
                json!("NodePort"),
                json!("10.96.4.2"),
                json!("<none>"),
                json!("80/TCP,443:30443/TCP"),
                json!("26h"),
                json!("app=web")
            ]
        );

        let lb = json!({"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.9",
            "externalIPs": ["192.0.2.9"], "ports": [{"port": 53, "protocol": "UDP"}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}, {"ip": "198.51.100.1"}]}}});
        assert_eq!(
            row("", "services", &lb)[2..5],
            [json!("10.96.0.9"), json!("198.51.100.1,lb.example,192.0.2.9"), json!("53/UDP")]
        );
        let pending = json!({"spec": {"type": "LoadBalancer"}});
        assert_eq!(row("", "services", &pending)[3..5], [json!("<pending>"), json!("<none>")]);
        let external = json!({"spec": {"type": "ExternalName", "externalName": "db.example"}});
        assert_eq!(row("", "services", &external)[1..4], [json!("ExternalName"), json!("<none>"), json!("db.example")]);
    }

    #[test]
    fn node_status_roles_and_addresses() {
        let obj = json!({"metadata": {"name": "n1", "creationTimestamp": ago(86400 * 3),
            "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "",
                "kubernetes.io/role": "edge", "kubernetes.io/hostname": "n1"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12"}}});
        assert_eq!(
            row("", "nodes", &obj),
            [
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,edge,worker"),
                json!("3d"),
                json!("v1.32.0"),
                json!("10.0.0.5"),
                json!("<none>"),
                json!("Debian GNU/Linux 12"),
                json!("<unknown>"),
                json!("<unknown>")
            ]
        );
        let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(row("", "nodes", &not_ready)[1..3], [json!("NotReady"), json!("<none>")]);
        assert_eq!(row("", "nodes", &json!({"spec": {"unschedulable": true}}))[1], "Unknown,SchedulingDisabled");
    }

    #[test]
    fn human_duration_matches_kubernetes() {
        let cases: &[(i64, &str)] = &[
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (599, "9m59s"),
            (600, "10m"),
            (3600, "60m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600 + 120, "3h2m"),
            (5 * 3600, "5h"),
            (8 * 3600 + 59 * 60, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (2 * 86400 + 5 * 3600, "2d5h"),
            (8 * 86400, "8d"),
            (400 * 86400, "400d"),
            (730 * 86400, "2y"),
            (3 * 365 * 86400 + 20 * 86400, "3y20d"),
            (9 * 365 * 86400 + 100 * 86400, "9y"),
        ];
        for &(secs, want) in cases {
            assert_eq!(human_duration(SignedDuration::from_secs(secs)), want, "{secs}s");
        }
        assert_eq!(human_duration(SignedDuration::from_millis(-1500)), "0s");
        assert_eq!(human_duration(SignedDuration::from_millis(2999)), "2s");
    }

    #[test]
    fn age_is_unknown_without_creation_timestamp() {
        let c = row("", "configmaps", &json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "binaryData": {"b": ""}}));
        assert_eq!(c, [json!("c"), json!(2), json!("<unknown>")]);
        let c = row("", "namespaces", &json!({"metadata": {"name": "ns", "creationTimestamp": ago(45)}}));
        assert_eq!(c, [json!("ns"), json!("Active"), json!("45s")]);
    }

    #[test]
    fn secrets_and_service_accounts() {
        let s = json!({"metadata": meta("s"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(row("", "secrets", &s)[1..3], [json!("kubernetes.io/tls"), json!(2)]);
        assert_eq!(row("", "secrets", &json!({"stringData": {"a": "x"}}))[1..3], [json!("Opaque"), json!(1)]);
        let sa = json!({"metadata": meta("default"), "secrets": [{"name": "t"}]});
        assert_eq!(row("", "serviceaccounts", &sa)[1], 1);
    }

    #[test]
    fn job_status_completions_and_duration() {
        let mut job = sample(res("batch", "jobs"));
        let c = row("batch", "jobs", &job);
        assert_eq!(c[1..5], [json!("Running"), json!("0/1"), json!("100s"), json!("26h")]);
        assert_eq!(c[7], "app=web");

        job["status"] = json!({"startTime": ago(400), "completionTime": ago(100), "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}]});
        assert_eq!(row("batch", "jobs", &job)[1..4], [json!("Complete"), json!("1/1"), json!("5m")]);

        job["status"] = json!({"conditions": [{"type": "Suspended", "status": "True"}]});
        assert_eq!(row("batch", "jobs", &job)[1..4], [json!("Suspended"), json!("0/1"), json!("")]);
        job["status"] = json!({"conditions": [{"type": "Failed", "status": "True"}]});
        assert_eq!(row("batch", "jobs", &job)[1], "Failed");

        job["spec"] = json!({"parallelism": 4});
        job["status"] = json!({"succeeded": 2});
        assert_eq!(row("batch", "jobs", &job)[2], "2/1 of 4");
    }

    #[test]
    fn cron_job_cells() {
        let c = row("batch", "cronjobs", &sample(res("batch", "cronjobs")));
        assert_eq!(
            c[1..7],
            [json!("*/5 * * * *"), json!("<none>"), json!("False"), json!(0), json!("2m"), json!("26h")]
        );
        let cj = json!({"spec": {"schedule": "@daily", "timeZone": "Etc/UTC", "suspend": true},
            "status": {"active": [{"name": "j1"}]}});
        assert_eq!(row("batch", "cronjobs", &cj)[2..6], [json!("Etc/UTC"), json!("True"), json!(1), json!("<none>")]);
    }

    #[test]
    fn events_in_both_groups() {
        let core = sample(res("", "events"));
        assert_eq!(
            row("", "events", &core),
            [
                json!("30s"),
                json!("Normal"),
                json!("Started"),
                json!("pod/web"),
                json!(""),
                json!("wharf-agent, n1"),
                json!("Started container app"),
                json!("60s"),
                json!(2),
                json!("sample")
            ]
        );
        let v1 = sample(res("events.k8s.io", "events"));
        assert_eq!(
            row("events.k8s.io", "events", &v1),
            [
                json!("90s"),
                json!("Normal"),
                json!("Scheduled"),
                json!("pod/web"),
                json!(""),
                json!("wharf-scheduler, wharf-scheduler-1"),
                json!("Assigned default/web to n1"),
                json!("90s"),
                json!(1),
                json!("sample")
            ]
        );
        let series = json!({"involvedObject": {"kind": "Node"}, "message": " flapping \n", "eventTime": ago(900),
            "series": {"count": 7, "lastObservedTime": ago(10)}, "reportingComponent": "wharf-agent"});
        assert_eq!(
            row("", "events", &series)[..9],
            [
                json!("10s"),
                json!(""),
                json!(""),
                json!("node"),
                json!(""),
                json!("wharf-agent"),
                json!("flapping"),
                json!("15m"),
                json!(7)
            ]
        );
    }

    #[test]
    fn endpoints_and_slices() {
        let ep = json!({"subsets": [
            {"addresses": [{"ip": "10.1.0.4"}, {"ip": "fd00::4"}], "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(row("", "endpoints", &ep)[1], "10.1.0.4:80,[fd00::4]:80,10.1.0.4:443 + 1 more...");
        let headless = json!({"subsets": [{"addresses": [{"ip": "10.1.0.9"}]}]});
        assert_eq!(row("", "endpoints", &headless)[1], "10.1.0.9");
        assert_eq!(row("", "endpoints", &json!({}))[1], "<none>");

        let slice = json!({"addressType": "IPv4", "ports": [{"port": 80}, {"name": "metrics"}, {}, {"port": 9}],
            "endpoints": [{"addresses": ["10.1.0.4"]}, {"addresses": ["10.1.0.5"]}]});
        assert_eq!(
            row("discovery.k8s.io", "endpointslices", &slice)[1..4],
            [json!("IPv4"), json!("80,metrics,* + 1 more..."), json!("10.1.0.4,10.1.0.5")]
        );
        assert_eq!(row("discovery.k8s.io", "endpointslices", &json!({}))[2..4], [json!("<unset>"), json!("<unset>")]);
    }

    #[test]
    fn lease_and_runtime_class() {
        assert_eq!(row("coordination.k8s.io", "leases", &sample(res("coordination.k8s.io", "leases")))[1], "wharf-1");
        assert_eq!(row("coordination.k8s.io", "leases", &json!({}))[1], "");
        assert_eq!(row("node.k8s.io", "runtimeclasses", &sample(res("node.k8s.io", "runtimeclasses")))[1], "wasmtime");
    }

    #[test]
    fn function_cells() {
        let c = row("wharf.dev", "functions", &sample(res("wharf.dev", "functions")));
        assert_eq!(
            c,
            [
                json!("sample"),
                json!("http://hello.default.wharf"),
                json!("1/1"),
                json!("26h"),
                json!("registry/hello:1"),
                json!("0"),
                json!("5"),
                json!(42)
            ]
        );
        let bare = json!({"metadata": meta("f"), "spec": {"image": "hello.wasm"}});
        assert_eq!(
            row("wharf.dev", "functions", &bare)[1..],
            [
                json!("<none>"),
                json!("0/0"),
                json!("26h"),
                json!("hello.wasm"),
                json!("<unset>"),
                json!("<unset>"),
                json!(0)
            ]
        );
    }
}
