//! ResourceQuota and LimitRange: their validation (kube-apiserver's field paths and messages),
//! LimitRange defaults, and the quota evaluator both the ResourceQuota admission plugin and the
//! quota controller use: what one object counts against a quota (`pods`, `requests.cpu`,
//! `count/configmaps`, ...) and whether a quota's scopes select it.
//!
//! Amounts are kept in thousandths (`i128`), parsed with [`Quantity`], the registry's exact
//! Kubernetes quantity, and printed back in its canonical form.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::Cause;
use crate::registry::kinds::ResourceInfo;
use crate::registry::validation::Quantity;

/// Amounts by quota resource name, in thousandths (`500m` → 500, `2` → 2000).
pub type Usage = BTreeMap<String, i128>;

/// A quantity in thousandths, if it parses.
pub fn milli(v: &Value) -> Option<i128> {
    Quantity::from_json(v).ok().map(|q| q.milli_value())
}

/// A resource list (`spec.hard`, `status.used`) in thousandths; unparsable entries are left out.
pub fn list(v: &Value) -> Usage {
    v.as_object().into_iter().flatten().filter_map(|(k, q)| Some((k.clone(), milli(q)?))).collect()
}

/// `milli` thousandths of resource `name` as Kubernetes prints it: `500m`, `1`, `2k`; memory and
/// storage in binary units when they divide (`256Mi`).
pub fn render(name: &str, milli: i128) -> String {
    let binary = ["memory", "storage", "hugepages"].iter().any(|w| name.contains(w));
    let text = if binary && milli % 1000 == 0 && milli != 0 && (milli / 1000) % 1024 == 0 {
        format!("{}Ki", milli / 1000 / 1024)
    } else {
        format!("{milli}m")
    };
    Quantity::parse(&text).map(|q| q.canonical()).unwrap_or(text)
}

/// A usage as a JSON resource list.
pub fn to_json(usage: &Usage) -> Value {
    Value::Object(usage.iter().map(|(k, v)| (k.clone(), render(k, *v).into())).collect())
}

// ---------------------------------------------------------------------------------------------
// The evaluator (k8s.io/kubernetes pkg/quota/v1/evaluator/core)

/// The storage key of the resource whose objects count toward quota resource `name`
/// (`requests.cpu` → `pods`, `count/deployments.apps` → `deployments.apps`); None if nothing does.
pub fn counted_by(name: &str) -> Option<String> {
    if let Some(resource) = name.strip_prefix("count/") {
        return Some(resource.to_string());
    }
    let owner = match name {
        "persistentvolumeclaims" | "requests.storage" => "persistentvolumeclaims",
        _ if name.contains(".storageclass.storage.k8s.io/") => "persistentvolumeclaims",
        "services" | "services.nodeports" | "services.loadbalancers" => "services",
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => name,
        "pods" | "cpu" | "memory" | "ephemeral-storage" => "pods",
        _ if name.starts_with("requests.") || name.starts_with("limits.") || name.starts_with("hugepages-") => "pods",
        _ => return None,
    };
    Some(owner.to_string())
}

fn add(usage: &mut Usage, name: impl Into<String>, amount: i128) {
    // Saturating: a quantity such as `1e40` is accepted, and two of them must not wrap around.
    let total = usage.entry(name.into()).or_default();
    *total = total.saturating_add(amount);
}

/// What `obj`, an object of `resource`, counts against quotas, as Kubernetes' evaluators compute
/// it: one `count/<resource>` for every object, plus the legacy object counts and the compute,
/// node port and storage resources of pods, Services and PersistentVolumeClaims.
pub fn usage(resource: &ResourceInfo, obj: &Value, now: Timestamp) -> Usage {
    let mut usage = Usage::new();
    usage.insert(format!("count/{}", resource.storage_key()), 1000);
    if !resource.group.is_empty() {
        return usage;
    }
    match resource.plural {
        "pods" if pod_counts(obj, now) => pod_usage(obj, &mut usage),
        "services" => service_usage(obj, &mut usage),
        "persistentvolumeclaims" => claim_usage(obj, &mut usage),
        plural @ ("configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas") => {
            usage.insert(plural.into(), 1000);
        }
        _ => {}
    }
    usage
}

/// Whether a pod still counts toward compute quota: not Succeeded or Failed, and not stuck
/// terminating past its deletion time and grace period (QuotaV1Pod).
pub fn pod_counts(pod: &Value, now: Timestamp) -> bool {
    if matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) {
        return false;
    }
    let meta = &pod["metadata"];
    if let (Some(at), Some(grace)) = (
        meta["deletionTimestamp"].as_str().and_then(|t| t.parse::<Timestamp>().ok()),
        meta["deletionGracePeriodSeconds"].as_i64(),
    ) && now > at + jiff::SignedDuration::from_secs(grace)
    {
        return false;
    }
    true
}

/// A container's (or the pod's) requests and limits turned into quota names: `cpu` and
/// `requests.cpu` for a cpu request, `limits.cpu` for a cpu limit... (podComputeUsageHelper).
fn compute(requests: &Usage, limits: &Usage, usage: &mut Usage) {
    for (k, v) in requests {
        match k.as_str() {
            "cpu" | "memory" | "ephemeral-storage" => {
                add(usage, k.clone(), *v);
                add(usage, format!("requests.{k}"), *v);
            }
            _ if k.starts_with("hugepages-") => add(usage, format!("requests.{k}"), *v),
            _ if k.contains('/') && !k.contains("kubernetes.io/") => add(usage, format!("requests.{k}"), *v),
            _ => {}
        }
    }
    for (k, v) in limits {
        if matches!(k.as_str(), "cpu" | "memory" | "ephemeral-storage") {
            add(usage, format!("limits.{k}"), *v);
        }
    }
}

fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    pod["spec"][field].as_array().into_iter().flatten()
}

fn pod_usage(pod: &Value, usage: &mut Usage) {
    usage.insert("pods".into(), 1000);
    let (mut requests, mut limits) = (Usage::new(), Usage::new());
    for c in containers(pod, "containers") {
        for (k, v) in list(&c["resources"]["requests"]) {
            add(&mut requests, k, v);
        }
        for (k, v) in list(&c["resources"]["limits"]) {
            add(&mut limits, k, v);
        }
    }
    // Init containers run one at a time before the others: the largest of them counts if it
    // is above the sum of the app containers.
    for c in containers(pod, "initContainers") {
        for (sum, field) in [(&mut requests, "requests"), (&mut limits, "limits")] {
            for (k, v) in list(&c["resources"][field]) {
                let entry = sum.entry(k).or_default();
                *entry = (*entry).max(v);
            }
        }
    }
    for (k, v) in list(&pod["spec"]["overhead"]) {
        add(&mut requests, k.clone(), v);
        add(&mut limits, k, v);
    }
    compute(&requests, &limits, usage);
}

fn service_usage(svc: &Value, usage: &mut Usage) {
    usage.insert("services".into(), 1000);
    let ports = svc["spec"]["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    let count = |n: usize| n as i128 * 1000;
    match svc["spec"]["type"].as_str() {
        Some("NodePort") => {
            usage.insert("services.nodeports".into(), count(ports.len()));
        }
        Some("LoadBalancer") => {
            let node_ports = if svc["spec"]["allocateLoadBalancerNodePorts"] == false {
                ports.iter().filter(|p| p["nodePort"].as_i64().is_some_and(|n| n != 0)).count()
            } else {
                ports.len()
            };
            usage.insert("services.nodeports".into(), count(node_ports));
            usage.insert("services.loadbalancers".into(), 1000);
        }
        _ => {}
    }
}

fn claim_usage(claim: &Value, usage: &mut Usage) {
    usage.insert("persistentvolumeclaims".into(), 1000);
    let storage = milli(&claim["spec"]["resources"]["requests"]["storage"]);
    if let Some(storage) = storage {
        usage.insert("requests.storage".into(), storage);
    }
    if let Some(class) = claim["spec"]["storageClassName"].as_str().filter(|c| !c.is_empty()) {
        usage.insert(format!("{class}.storageclass.storage.k8s.io/persistentvolumeclaims"), 1000);
        if let Some(storage) = storage {
            usage.insert(format!("{class}.storageclass.storage.k8s.io/requests.storage"), storage);
        }
    }
}

/// The quota resources a pod must state for every container when a quota tracks them, as
/// Kubernetes has required since before QoS classes.
const MUST_SPECIFY: &[&str] = &["cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"];

/// For a pod under a quota tracking `tracked`: `must specify limits.cpu for: a,b; ...` when some
/// container lacks a request or limit the quota tracks (podEvaluator.Constraints).
pub fn missing_constraints(pod: &Value, tracked: &BTreeSet<String>) -> Option<String> {
    let required: BTreeSet<&str> = MUST_SPECIFY.iter().copied().filter(|r| tracked.contains(*r)).collect();
    if required.is_empty() {
        return None;
    }
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for c in containers(pod, "containers").chain(containers(pod, "initContainers")) {
        let mut has = Usage::new();
        compute(&list(&c["resources"]["requests"]), &list(&c["resources"]["limits"]), &mut has);
        for r in required.iter().filter(|r| !has.contains_key(**r)) {
            missing.entry(r).or_default().insert(c["name"].as_str().unwrap_or_default().to_string());
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| format!("{r} for: {}", names.iter().cloned().collect::<Vec<_>>().join(",")))
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

// ---------------------------------------------------------------------------------------------
// Scopes

/// A quota's scopes as selector terms: `spec.scopes` (each an `Exists`) and
/// `spec.scopeSelector.matchExpressions`.
fn scope_terms(quota: &Value) -> Vec<(&str, &str, Vec<&str>)> {
    let spec = &quota["spec"];
    let scopes =
        spec["scopes"].as_array().into_iter().flatten().filter_map(Value::as_str).map(|s| (s, "Exists", vec![]));
    let selected = spec["scopeSelector"]["matchExpressions"].as_array().into_iter().flatten().map(|e| {
        let values = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        (e["scopeName"].as_str().unwrap_or_default(), e["operator"].as_str().unwrap_or_default(), values)
    });
    scopes.chain(selected).collect()
}

/// Whether a quota applies to `obj` of `resource`: an unscoped quota applies to everything; a
/// scoped one only to pods its every scope selects. `CrossNamespacePodAffinity` is not
/// supported: a quota with it selects nothing.
pub fn in_scope(quota: &Value, resource: &ResourceInfo, obj: &Value) -> bool {
    let terms = scope_terms(quota);
    if terms.is_empty() {
        return true;
    }
    if !resource.group.is_empty() || resource.plural != "pods" {
        return false;
    }
    let spec = &obj["spec"];
    terms.iter().all(|(scope, operator, values)| {
        let selected = match *scope {
            "Terminating" => spec["activeDeadlineSeconds"].as_i64().is_some_and(|s| s >= 0),
            "NotTerminating" => spec["activeDeadlineSeconds"].is_null(),
            "BestEffort" => crate::registry::strategy::qos_class(obj) == "BestEffort",
            "NotBestEffort" => crate::registry::strategy::qos_class(obj) != "BestEffort",
            "PriorityClass" => {
                let class = spec["priorityClassName"].as_str().unwrap_or_default();
                return match *operator {
                    "In" => values.contains(&class),
                    "NotIn" => !values.contains(&class),
                    "Exists" => !class.is_empty(),
                    "DoesNotExist" => class.is_empty(),
                    _ => false,
                };
            }
            _ => return false,
        };
        match *operator {
            "DoesNotExist" => !selected,
            _ => selected,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Validation (k8s.io/kubernetes pkg/apis/core/validation)

const STANDARD_QUOTA: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
];
const INTEGER_QUOTA: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];
const SCOPES: &[&str] =
    &["Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass", "CrossNamespacePodAffinity"];
const POD_SCOPED: &[&str] =
    &["pods", "count/pods", "cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"];
const LIMIT_TYPES: &[&str] = &["Pod", "Container", "PersistentVolumeClaim"];

/// Validates a ResourceQuota or LimitRange (the dispatch in `validation::validate`).
pub fn validate(resource: &ResourceInfo, obj: &Value) -> Vec<Cause> {
    let mut errs = Vec::new();
    match resource.kind {
        "ResourceQuota" => {
            for (field, path) in [(&obj["spec"]["hard"], "spec.hard"), (&obj["status"]["hard"], "status.hard")] {
                quota_list(field, path, &mut errs);
            }
            quota_list(&obj["status"]["used"], "status.used", &mut errs);
            scopes(&obj["spec"], &mut errs);
        }
        "LimitRange" => limit_range(obj, &mut errs),
        _ => {}
    }
    errs
}

fn keyed(path: &str, key: &str) -> String {
    format!("{path}[{key}]")
}

fn show(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// A qualified name: an optional DNS subdomain prefix and `/`, then 1–63 alphanumerics, `-`,
/// `_` and `.` starting and ending alphanumeric.
fn qualified_name(name: &str) -> bool {
    let (prefix, local) = match name.split_once('/') {
        Some((p, l)) => (Some(p), l),
        None => (None, name),
    };
    let label_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    label_ok(local) && prefix_ok && !local.contains('/')
}

fn resource_name(name: &str, path: &str, errs: &mut Vec<Cause>) -> bool {
    if qualified_name(name) {
        return true;
    }
    errs.push(Cause::invalid(
        path,
        name,
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
         alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
         '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    ));
    false
}

/// The quantity at `v`, or a cause on `path`.
fn quantity(v: &Value, path: &str, errs: &mut Vec<Cause>) -> Option<Quantity> {
    match Quantity::from_json(v) {
        Ok(q) => Some(q),
        Err(e) => {
            errs.push(Cause::invalid(path, show(v), e));
            None
        }
    }
}

fn quota_list(list: &Value, path: &str, errs: &mut Vec<Cause>) {
    for (name, v) in list.as_object().into_iter().flatten() {
        let at = keyed(path, name);
        if resource_name(name, &at, errs)
            && !name.contains('/')
            && !STANDARD_QUOTA.contains(&name.as_str())
            && !name.starts_with("requests.hugepages-")
            && !name.starts_with("hugepages-")
        {
            errs.push(Cause::invalid(&at, name, "must be a standard resource for quota"));
        }
        let Some(q) = quantity(v, &at, errs) else { continue };
        if q.is_negative() {
            errs.push(Cause::invalid(&at, q.canonical(), "must be greater than or equal to 0"));
        } else if INTEGER_QUOTA.contains(&name.as_str()) && q.milli_value() % 1000 != 0 {
            errs.push(Cause::invalid(&at, q.canonical(), "must be an integer"));
        }
    }
}

fn scopes(spec: &Value, errs: &mut Vec<Cause>) {
    let hard: Vec<&String> = spec["hard"].as_object().into_iter().flatten().map(|(k, _)| k).collect();
    let valid_for = |scope: &str, resource: &str| match scope {
        "BestEffort" => matches!(resource, "pods" | "count/pods"),
        _ => POD_SCOPED.contains(&resource),
    };
    let applied_to_all = |scope: &str, path: &str, shown: &str, errs: &mut Vec<Cause>| {
        for r in &hard {
            let standard = STANDARD_QUOTA.contains(&r.as_str());
            if standard && !valid_for(scope, r) {
                errs.push(Cause::invalid(path, shown, "unsupported scope applied to resource"));
            }
        }
    };
    if let Some(list) = spec["scopes"].as_array().filter(|l| !l.is_empty()) {
        let shown = format!("[]core.ResourceQuotaScope{{{}}}", list.iter().map(show).collect::<Vec<_>>().join(", "));
        let names: BTreeSet<String> = list.iter().map(show).collect();
        for scope in list.iter().map(show) {
            if !SCOPES.contains(&scope.as_str()) {
                errs.push(Cause::invalid("spec.scopes", &shown, "unsupported scope"));
            }
            applied_to_all(&scope, "spec.scopes", &shown, errs);
        }
        for pair in [["BestEffort", "NotBestEffort"], ["Terminating", "NotTerminating"]] {
            if pair.iter().all(|s| names.contains(*s)) {
                errs.push(Cause::invalid("spec.scopes", &shown, "conflicting scopes"));
            }
        }
    }
    let expressions = spec["scopeSelector"]["matchExpressions"].as_array().into_iter().flatten();
    for (i, e) in expressions.enumerate() {
        let path = format!("spec.scopeSelector.matchExpressions[{i}]");
        let scope = e["scopeName"].as_str().unwrap_or_default();
        if !SCOPES.contains(&scope) {
            errs.push(Cause::invalid(format!("{path}.scopeName"), scope, "unsupported scope"));
        }
        let values = e["values"].as_array().map_or(0, Vec::len);
        match e["operator"].as_str().unwrap_or_default() {
            "In" | "NotIn" if values == 0 => errs.push(Cause::invalid(
                format!("{path}.values"),
                "null",
                "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
            )),
            "Exists" | "DoesNotExist" if values != 0 => errs.push(Cause::invalid(
                format!("{path}.values"),
                show(&e["values"]),
                "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(Cause::not_supported(
                format!("{path}.operator"),
                other,
                &["In", "NotIn", "Exists", "DoesNotExist"],
            )),
        }
        let exists_only = matches!(scope, "Terminating" | "NotTerminating" | "BestEffort" | "NotBestEffort");
        if exists_only && e["operator"] != "Exists" {
            errs.push(Cause::invalid(
                format!("{path}.operator"),
                show(&e["operator"]),
                "must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, \
                 ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort \
                 or ResourceQuotaScopeCrossNamespacePodAffinity",
            ));
        }
        if SCOPES.contains(&scope) {
            applied_to_all(scope, &format!("{path}.scopeName"), scope, errs);
        }
    }
}

/// A LimitRange item's resource names: Pods and Containers take cpu, memory, ephemeral-storage
/// and hugepages (or qualified extended names).
fn limit_resource_name(kind: &str, name: &str, path: &str, errs: &mut Vec<Cause>) {
    if !resource_name(name, path, errs) || !matches!(kind, "Pod" | "Container") || name.contains('/') {
        return;
    }
    if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !name.starts_with("hugepages-") {
        errs.push(Cause::invalid(path, name, "must be a standard resource for containers"));
    }
}

fn limit_range(obj: &Value, errs: &mut Vec<Cause>) {
    for (i, item) in obj["spec"]["limits"].as_array().into_iter().flatten().enumerate() {
        let at = format!("spec.limits[{i}]");
        let kind = item["type"].as_str().unwrap_or_default();
        if kind.is_empty() {
            errs.push(Cause::required(format!("{at}.type")));
        } else if !(LIMIT_TYPES.contains(&kind) || kind.contains('/') && qualified_name(kind)) {
            errs.push(Cause::invalid(format!("{at}.type"), kind, "must be a standard limit type or fully qualified"));
        }
        let mut fields: BTreeMap<&str, BTreeMap<String, Quantity>> = BTreeMap::new();
        for field in ["max", "min", "default", "defaultRequest", "maxLimitRequestRatio"] {
            if kind == "Pod" && matches!(field, "default" | "defaultRequest") {
                if item[field].as_object().is_some_and(|m| !m.is_empty()) {
                    errs.push(Cause::forbidden(format!("{at}.{field}"), "may not be specified when `type` is 'Pod'"));
                }
                continue;
            }
            for (name, v) in item[field].as_object().into_iter().flatten() {
                let path = keyed(&format!("{at}.{field}"), name);
                limit_resource_name(kind, name, &path, errs);
                if let Some(q) = quantity(v, &path, errs) {
                    fields.entry(field).or_default().insert(name.clone(), q);
                }
            }
        }
        if kind == "PersistentVolumeClaim"
            && item["min"].get("storage").is_none()
            && item["max"].get("storage").is_none()
        {
            errs.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: either minimum or maximum storage value is required, but neither was \
                          provided"
                    .into(),
                field: format!("{at}.limits"),
            });
        }
        let keys: BTreeSet<&String> = fields.values().flat_map(BTreeMap::keys).collect();
        let get = |f: &str, k: &String| fields.get(f).and_then(|m| m.get(k));
        for k in keys {
            let (min, max) = (get("min", k), get("max", k));
            let (default, request, ratio) =
                (get("default", k), get("defaultRequest", k), get("maxLimitRequestRatio", k));
            let path = |f: &str| keyed(&format!("{at}.{f}"), k);
            let c = Quantity::canonical;
            // (lower, its name, upper, its name, the field reported, whether its value is the
            // lower's), in Kubernetes' order; each pair must not be inverted.
            let named = [
                (min, "min value", max, "max value", "min", true),
                (min, "min value", request, "default request value", "defaultRequest", false),
                (request, "default request value", max, "max value", "defaultRequest", true),
                (request, "default request value", default, "default limit value", "defaultRequest", true),
                (min, "min value", default, "default value", "default", true),
                (default, "default value", max, "max value", "default", false),
            ];
            for (lower, lower_name, upper, upper_name, field, report_lower) in named {
                if let (Some(lower), Some(upper)) = (lower, upper)
                    && lower > upper
                {
                    let detail = format!("{lower_name} {} is greater than {upper_name} {}", c(lower), c(upper));
                    let value = if report_lower { c(lower) } else { c(upper) };
                    errs.push(Cause::invalid(path(field), value, detail));
                }
            }
            if let Some(ratio) = ratio {
                if ratio.milli_value() < 1000 {
                    let detail = format!("ratio {} is less than 1", c(ratio));
                    errs.push(Cause::invalid(path("maxLimitRequestRatio"), c(ratio), detail));
                } else if let (Some(min), Some(max)) = (min, max)
                    && min.milli_value() > 0
                {
                    let limit = max.milli_value() as f64 / min.milli_value() as f64;
                    if ratio.milli_value() as f64 / 1000.0 > limit {
                        let detail = format!("ratio {} is greater than max/min = {limit:.6}", c(ratio));
                        errs.push(Cause::invalid(path("maxLimitRequestRatio"), c(ratio), detail));
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Defaults

/// A LimitRange's Container items, defaulted as SetDefaults_LimitRangeItem does: the default
/// limit from `max`, the default request from the default limit, else from `min`.
pub fn default_limit_range(o: &mut Map<String, Value>) {
    let Some(items) = o.get_mut("spec").and_then(|s| s.get_mut("limits")).and_then(Value::as_array_mut) else {
        return;
    };
    for item in items.iter_mut().filter_map(Value::as_object_mut) {
        if item.get("type").and_then(Value::as_str) != Some("Container") {
            continue;
        }
        let copy = |item: &mut Map<String, Value>, from: &str, to: &str| {
            let source = item.get(from).and_then(Value::as_object).cloned().unwrap_or_default();
            if !item.get(to).is_some_and(Value::is_object) {
                item.insert(to.into(), Value::Object(Map::new()));
            }
            let target = item.get_mut(to).and_then(Value::as_object_mut).expect("set above");
            for (k, v) in source {
                target.entry(k).or_insert(v);
            }
        };
        copy(item, "max", "default");
        copy(item, "default", "defaultRequest");
        copy(item, "min", "defaultRequest");
        for field in ["default", "defaultRequest"] {
            if item.get(field).and_then(Value::as_object).is_some_and(Map::is_empty) {
                item.remove(field);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::kinds::lookup;

    fn res(plural: &str) -> &'static ResourceInfo {
        lookup("", "v1", plural).unwrap()
    }

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn quantities_render_as_kubernetes_prints_them() {
        assert_eq!(render("requests.cpu", 500), "500m");
        assert_eq!(render("requests.cpu", 1000), "1");
        assert_eq!(render("pods", 2000), "2");
        assert_eq!(render("requests.memory", 256 * 1024 * 1024 * 1000), "256Mi");
        assert_eq!(render("requests.memory", 1_000_000_000_000), "1G");
        assert_eq!(render("pods", 0), "0");
    }

    #[test]
    fn a_pod_counts_its_containers_and_its_largest_init_container() {
        let pod = json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m"}}},
                {"name": "b", "resources": {"requests": {"cpu": "250m"}}},
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
        }, "status": {"phase": "Pending"}});
        let u = usage(res("pods"), &pod, Timestamp::now());
        assert_eq!(u["pods"], 1000);
        assert_eq!(u["count/pods"], 1000);
        assert_eq!(u["requests.cpu"], 2000);
        assert_eq!(u["cpu"], 2000);
        assert_eq!(u["limits.cpu"], 500);
        assert_eq!(render("requests.memory", u["requests.memory"]), "64Mi");
        let done = json!({"spec": pod["spec"], "status": {"phase": "Succeeded"}});
        let u = usage(res("pods"), &done, Timestamp::now());
        assert_eq!(u.keys().collect::<Vec<_>>(), ["count/pods"], "a finished pod is only an object");
    }

    #[test]
    fn huge_quantities_saturate_instead_of_wrapping() {
        let huge = json!({"requests": {"cpu": "1e40"}});
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": huge},
            {"name": "b", "resources": huge},
        ]}, "status": {"phase": "Pending"}});
        let u = usage(res("pods"), &pod, Timestamp::now());
        assert_eq!(u["requests.cpu"], i128::MAX);
    }

    #[test]
    fn pods_stuck_terminating_past_their_grace_stop_counting() {
        let pod = |at: &str| json!({"metadata": {"deletionTimestamp": at, "deletionGracePeriodSeconds": 30}, "spec": {"containers": []}});
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        assert!(pod_counts(&pod("2026-01-01T00:00:50Z"), now));
        assert!(!pod_counts(&pod("2026-01-01T00:00:00Z"), now));
    }

    #[test]
    fn services_count_node_ports_and_load_balancers() {
        let svc = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        let u = usage(res("services"), &svc, Timestamp::now());
        assert_eq!((u["services"], u["services.nodeports"], u["services.loadbalancers"]), (1000, 2000, 1000));
        assert_eq!(counted_by("services.nodeports").as_deref(), Some("services"));
        assert_eq!(counted_by("count/deployments.apps").as_deref(), Some("deployments.apps"));
        assert_eq!(counted_by("limits.memory").as_deref(), Some("pods"));
        assert_eq!(
            counted_by("gold.storageclass.storage.k8s.io/requests.storage").as_deref(),
            Some("persistentvolumeclaims")
        );
    }

    #[test]
    fn containers_must_state_what_a_quota_tracks() {
        let pod = json!({"spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": "1"}}},
            {"name": "d", "resources": {}},
        ]}});
        let tracked: BTreeSet<String> = ["requests.cpu", "limits.cpu", "pods"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            missing_constraints(&pod, &tracked).unwrap(),
            "must specify limits.cpu for: c,d; requests.cpu for: d"
        );
        let pods_only: BTreeSet<String> = ["pods".to_string()].into();
        assert_eq!(missing_constraints(&pod, &pods_only), None);
    }

    #[test]
    fn scopes_select_pods_by_deadline_qos_and_priority_class() {
        let pods = res("pods");
        let quota = |spec: Value| json!({"spec": spec});
        let best_effort = json!({"spec": {"containers": [{"name": "c"}]}});
        let burstable = json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}],
            "activeDeadlineSeconds": 30, "priorityClassName": "high"}});
        let be = quota(json!({"scopes": ["BestEffort"]}));
        assert!(in_scope(&be, pods, &best_effort));
        assert!(!in_scope(&be, pods, &burstable));
        assert!(!in_scope(&be, res("configmaps"), &json!({})), "scoped quotas count only pods");
        assert!(in_scope(&quota(json!({"scopes": ["Terminating", "NotBestEffort"]})), pods, &burstable));
        assert!(in_scope(&quota(json!({"scopes": ["NotTerminating"]})), pods, &best_effort));
        let high = quota(json!({"scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}));
        assert!(in_scope(&high, pods, &burstable));
        assert!(!in_scope(&high, pods, &best_effort));
        assert!(in_scope(&quota(json!({})), res("configmaps"), &json!({})));
    }

    #[test]
    fn quota_validation_reports_kubernetes_paths_and_messages() {
        let quota = json!({"spec": {"hard": {"pods": "1.5", "cpus": "1", "memory": "-1", "count/widgets.example.com": "3"},
            "scopes": ["BestEffort", "NotBestEffort"]}});
        let got = messages(&validate(res("resourcequotas"), &quota));
        assert!(got.contains(&"spec.hard[pods]: Invalid value: \"1500m\": must be an integer".to_string()), "{got:?}");
        assert!(
            got.contains(&"spec.hard[cpus]: Invalid value: \"cpus\": must be a standard resource for quota".into())
        );
        assert!(got.contains(&"spec.hard[memory]: Invalid value: \"-1\": must be greater than or equal to 0".into()));
        assert!(got.iter().any(|m| m.starts_with("spec.scopes: ") && m.ends_with("conflicting scopes")), "{got:?}");
        assert!(got.iter().any(|m| m.ends_with("unsupported scope applied to resource")), "{got:?}");
        let fine = json!({"spec": {"hard": {"pods": "10", "requests.cpu": "2", "count/deployments.apps": "2"}}});
        assert!(validate(res("resourcequotas"), &fine).is_empty());
    }

    #[test]
    fn limit_range_validation_compares_its_bounds() {
        let lr = json!({"spec": {"limits": [
            {"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "2"}, "default": {"cpu": "3"}},
            {"type": "Pod", "default": {"cpu": "1"}},
            {"type": "Container", "maxLimitRequestRatio": {"memory": "500m"}, "max": {"gpu": "1"}},
        ]}});
        let got = messages(&validate(res("limitranges"), &lr));
        assert!(
            got.contains(
                &"spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1".into()
            ),
            "{got:?}"
        );
        assert!(
            got.contains(
                &"spec.limits[0].default[cpu]: Invalid value: \"1\": default value 3 is greater than max value 1"
                    .into()
            ),
            "{got:?}"
        );
        assert!(
            got.contains(&"spec.limits[1].default: Forbidden: may not be specified when `type` is 'Pod'".into()),
            "{got:?}"
        );
        assert!(
            got.contains(
                &"spec.limits[2].maxLimitRequestRatio[memory]: Invalid value: \"500m\": ratio 500m is less than 1"
                    .into()
            ),
            "{got:?}"
        );
        assert!(
            got.contains(
                &"spec.limits[2].max[gpu]: Invalid value: \"gpu\": must be a standard resource for containers".into()
            ),
            "{got:?}"
        );
    }

    #[test]
    fn kubectl_get_shows_used_over_hard() {
        use crate::registry::table::{cells, columns};
        let quota = json!({"metadata": {"name": "compute", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"hard": {"requests.cpu": "1", "pods": "2", "limits.cpu": "2", "count/configmaps": "10"},
                "used": {"requests.cpu": "500m", "pods": "1", "limits.cpu": "1"}}});
        let now: Timestamp = "2026-01-01T00:00:30Z".parse().unwrap();
        let names: Vec<Value> = columns(res("resourcequotas")).iter().map(|c| c["name"].clone()).collect();
        assert_eq!(names, ["Name", "Age", "Request", "Limit"]);
        assert_eq!(
            cells(res("resourcequotas"), &quota, now),
            vec![
                json!("compute"),
                json!("30s"),
                json!("count/configmaps: 0/10, pods: 1/2, requests.cpu: 500m/1"),
                json!("limits.cpu: 1/2")
            ]
        );
        let names: Vec<Value> = columns(res("limitranges")).iter().map(|c| c["name"].clone()).collect();
        assert_eq!(names, ["Name", "Created At"]);
        assert_eq!(cells(res("limitranges"), &quota, now), vec![json!("compute"), json!("2026-01-01T00:00:00Z")]);
    }

    #[test]
    fn limit_range_defaults_fill_limits_from_max_and_requests_from_limits_or_min() {
        let mut lr = json!({"spec": {"limits": [
            {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}},
            {"type": "Pod", "max": {"cpu": "4"}},
        ]}});
        default_limit_range(lr.as_object_mut().unwrap());
        assert_eq!(lr["spec"]["limits"][0]["default"], json!({"cpu": "2"}));
        assert_eq!(lr["spec"]["limits"][0]["defaultRequest"], json!({"cpu": "2", "memory": "64Mi"}));
        assert!(lr["spec"]["limits"][1].get("default").is_none());
    }
}
