//! Pod Security admission: the Pod Security Standards (privileged, baseline, restricted),
//! enforced, warned about or audited per namespace by its `pod-security.kubernetes.io/*` labels.
//!
//! As kube-apiserver's PodSecurity plugin: a pod that violates its namespace's `enforce` level
//! is refused (`pods "x" is forbidden: violates PodSecurity "restricted:latest": ...`) on create
//! and on updates that change its spec; the `warn` level adds a warning (`would violate
//! PodSecurity ...`). Workloads with a pod template (Deployment, ReplicaSet, DaemonSet,
//! StatefulSet, Job, CronJob, ReplicationController, PodTemplate) are never refused, only warned
//! about against both levels. Setting a namespace's `enforce` level warns about the pods already
//! there that would violate it; invalid label values are refused. Nothing is exempt.
//! The checks themselves live in [`checks`].

mod checks;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;
use serde_json::Value;

use checks::{Level, Policy, evaluate};

use super::{Operation, Request};
use crate::api::ApiState;
use crate::error::{Cause, Error, Result};
use crate::store::ObjectKey;

const PREFIX: &str = "pod-security.kubernetes.io/";
/// The modes, in the order their labels are read.
const MODES: [&str; 3] = ["enforce", "audit", "warn"];

/// The three policies of a namespace, from its labels. An invalid value counts as
/// `restricted:latest` (the default kube-apiserver falls back to for a bad label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespacePolicy {
    pub enforce: Policy,
    pub audit: Policy,
    pub warn: Policy,
}

impl NamespacePolicy {
    pub fn from_labels(labels: Option<&serde_json::Map<String, Value>>) -> Self {
        let read = |mode: &str| -> Policy {
            let label = |key: String| labels.and_then(|l| l.get(&key)).and_then(Value::as_str);
            let level = label(format!("{PREFIX}{mode}"));
            let version = label(format!("{PREFIX}{mode}-version"));
            Policy::parse(level, version).unwrap_or(Policy::RESTRICTED_LATEST)
        };
        Self { enforce: read("enforce"), audit: read("audit"), warn: read("warn") }
    }
}

/// The `metadata.labels` errors of a namespace's pod-security labels.
fn label_causes(labels: Option<&serde_json::Map<String, Value>>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(labels) = labels else { return causes };
    for mode in MODES {
        let key = format!("{PREFIX}{mode}");
        if let Some(value) = labels.get(&key) {
            let text = value.as_str().unwrap_or_default();
            if Level::parse(text).is_none() {
                causes.push(Cause::not_supported(
                    format!("metadata.labels[{key}]"),
                    text,
                    &["privileged", "baseline", "restricted"],
                ));
            }
        }
        let key = format!("{key}-version");
        if let Some(value) = labels.get(&key) {
            let text = value.as_str().unwrap_or_default();
            if checks::parse_version(text).is_none() {
                causes.push(Cause::invalid(format!("metadata.labels[{key}]"), text, "must be \"latest\" or \"v1.x\""));
            }
        }
    }
    causes
}

/// The kinds whose pod template is checked (warnings only), and where the template's
/// metadata and spec are.
fn template_path(request: &Request<'_>) -> Option<&'static [&'static str]> {
    const TEMPLATE: &[&str] = &["spec", "template"];
    const CRON: &[&str] = &["spec", "jobTemplate", "spec", "template"];
    const POD_TEMPLATE: &[&str] = &["template"];
    let kinds: [(&str, &str, &'static [&'static str]); 8] = [
        ("apps", "Deployment", TEMPLATE),
        ("apps", "ReplicaSet", TEMPLATE),
        ("apps", "DaemonSet", TEMPLATE),
        ("apps", "StatefulSet", TEMPLATE),
        ("batch", "Job", TEMPLATE),
        ("batch", "CronJob", CRON),
        ("", "ReplicationController", TEMPLATE),
        ("", "PodTemplate", POD_TEMPLATE),
    ];
    kinds.into_iter().find(|(group, kind, _)| request.is(group, kind)).map(|(_, _, path)| path)
}

/// A pod (or pod template) as the checks read it: annotations and spec. `None` when the spec
/// does not decode (validation already refused such an object).
fn pod_parts(object: &Value) -> Option<(BTreeMap<String, String>, PodSpec)> {
    let annotations = object["metadata"]["annotations"]
        .as_object()
        .map(|a| a.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default();
    let spec: PodSpec = serde_json::from_value(object.get("spec")?.clone()).ok()?;
    Some((annotations, spec))
}

/// `violates PodSecurity "restricted:latest": reason (detail), ...` without the verb.
fn summary(policy: Policy, violations: &[checks::Violation]) -> String {
    let list: Vec<String> = violations.iter().map(checks::Violation::to_string).collect();
    format!("PodSecurity \"{policy}\": {}", list.join(", "))
}

pub fn validate(
    state: &ApiState,
    request: &Request<'_>,
    object: &Value,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    if request.operation == Operation::Delete || request.namespace.is_empty() && !request.is("", "Namespace") {
        return Ok(());
    }
    if request.is("", "Namespace") {
        return validate_namespace(state, request, object, old, warnings);
    }
    let pod = request.is("", "Pod");
    let template = template_path(request);
    if !pod && template.is_none() {
        return Ok(());
    }
    let namespace = state.store.get(&ObjectKey::new("namespaces", "", request.namespace));
    let policy =
        NamespacePolicy::from_labels(namespace.as_ref().and_then(|ns| ns.object["metadata"]["labels"].as_object()));
    if [policy.enforce, policy.warn, policy.audit].iter().all(|p| p.level == Level::Privileged) {
        return Ok(());
    }

    if pod {
        if request.operation == Operation::Update && old.is_some_and(|old| !significant_pod_update(old, object)) {
            return Ok(());
        }
        let Some((annotations, spec)) = pod_parts(object) else { return Ok(()) };
        let enforced = evaluate(policy.enforce, &annotations, &spec);
        if !enforced.is_empty() {
            return Err(Error::Forbidden(format!(
                "pods {:?} is forbidden: violates {}",
                request.name,
                summary(policy.enforce, &enforced)
            )));
        }
        if policy.warn != policy.enforce {
            let warned = evaluate(policy.warn, &annotations, &spec);
            if !warned.is_empty() {
                warnings.push(format!("would violate {}", summary(policy.warn, &warned)));
            }
        }
        audit(request, policy, &annotations, &spec);
        return Ok(());
    }

    let mut template_value = object;
    for key in template.unwrap_or_default() {
        template_value = &template_value[*key];
    }
    if let (Operation::Update, Some(old)) = (request.operation, old) {
        let mut old_template = old;
        for key in template.unwrap_or_default() {
            old_template = &old_template[*key];
        }
        if old_template == template_value {
            return Ok(());
        }
    }
    let Some((annotations, spec)) = pod_parts(template_value) else { return Ok(()) };
    let mut seen = Vec::new();
    for level in [policy.enforce, policy.warn] {
        if seen.contains(&level) {
            continue;
        }
        seen.push(level);
        let violations = evaluate(level, &annotations, &spec);
        if !violations.is_empty() {
            warnings.push(format!("would violate {}", summary(level, &violations)));
        }
    }
    audit(request, policy, &annotations, &spec);
    Ok(())
}

/// The `audit` level has no audit log to annotate here: its violations are logged.
fn audit(request: &Request<'_>, policy: NamespacePolicy, annotations: &BTreeMap<String, String>, spec: &PodSpec) {
    if policy.audit.level == Level::Privileged {
        return;
    }
    let violations = evaluate(policy.audit, annotations, spec);
    if !violations.is_empty() {
        tracing::info!(
            namespace = request.namespace,
            name = request.name,
            kind = request.resource.kind,
            policy = %policy.audit,
            "pod-security audit: would violate {}",
            summary(policy.audit, &violations)
        );
    }
}

/// Whether a pod update is one the policy is checked on: the spec changed (or an annotation
/// the checks read). Status, label and other metadata updates are not.
fn significant_pod_update(old: &Value, new: &Value) -> bool {
    let apparmor = |pod: &Value| -> Vec<(String, Value)> {
        pod["metadata"]["annotations"]
            .as_object()
            .map(|a| {
                a.iter()
                    .filter(|(k, _)| k.starts_with(checks::APPARMOR_ANNOTATION_PREFIX))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    old["spec"] != new["spec"] || apparmor(old) != apparmor(new)
}

/// Namespaces: refuse invalid labels; when the `enforce` policy changes to a stricter one than
/// privileged, warn about the pods already there that violate it.
fn validate_namespace(
    state: &ApiState,
    request: &Request<'_>,
    object: &Value,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let labels = object["metadata"]["labels"].as_object();
    let causes = label_causes(labels);
    if !causes.is_empty() {
        return Err(Error::Invalid {
            group: String::new(),
            kind: "Namespace".into(),
            name: request.name.to_string(),
            causes,
        });
    }
    let Some(old) = old.filter(|_| request.operation == Operation::Update) else { return Ok(()) };
    let new_policy = NamespacePolicy::from_labels(labels).enforce;
    let old_policy = NamespacePolicy::from_labels(old["metadata"]["labels"].as_object()).enforce;
    if new_policy == old_policy || new_policy.level == Level::Privileged {
        return Ok(());
    }
    let pods = state.store.list("pods", Some(request.name), None, 0, |_| true);
    let mut evaluated: Vec<(String, Vec<String>)> = Vec::new();
    for stored in &pods.items {
        let Some((annotations, spec)) = pod_parts(&stored.object) else { continue };
        let violations = evaluate(new_policy, &annotations, &spec);
        if !violations.is_empty() {
            evaluated.push((stored.key.name.clone(), violations.iter().map(|v| v.reason.clone()).collect()));
        }
    }
    warnings.extend(existing_pod_warnings(request.name, new_policy, evaluated));
    Ok(())
}

/// kube-apiserver's warnings for pods already in a namespace that violate its new enforce
/// policy: one headline, then one line per distinct list of reasons, naming its first pod
/// and counting the others. `pods` are (name, reasons), in name order.
fn existing_pod_warnings(namespace: &str, policy: Policy, pods: Vec<(String, Vec<String>)>) -> Vec<String> {
    if pods.is_empty() {
        return Vec::new();
    }
    let mut groups: Vec<(Vec<String>, String, usize)> = Vec::new();
    for (name, reasons) in pods {
        match groups.iter_mut().find(|(r, _, _)| *r == reasons) {
            Some(group) => group.2 += 1,
            None => groups.push((reasons, name, 0)),
        }
    }
    let mut warnings = vec![format!(
        "existing pods in namespace {namespace:?} violate the new PodSecurity enforce level \"{policy}\""
    )];
    for (reasons, first, others) in groups {
        let others = match others {
            0 => String::new(),
            1 => " (and 1 other pod)".to_string(),
            n => format!(" (and {n} other pods)"),
        };
        warnings.push(format!("{first}{others}: {}", reasons.join(", ")));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn namespace_labels_give_the_policies() {
        let labels = json!({
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/enforce-version": "v1.29",
            "pod-security.kubernetes.io/warn": "restricted",
        });
        let policy = NamespacePolicy::from_labels(labels.as_object());
        assert_eq!(policy.enforce.to_string(), "baseline:v1.29");
        assert_eq!(policy.warn.to_string(), "restricted:latest");
        assert_eq!(policy.audit.to_string(), "privileged:latest");
        assert_eq!(NamespacePolicy::from_labels(None).enforce.level, Level::Privileged);
        let bad = json!({"pod-security.kubernetes.io/enforce": "strict"});
        assert_eq!(NamespacePolicy::from_labels(bad.as_object()).enforce, Policy::RESTRICTED_LATEST);
    }

    #[test]
    fn invalid_labels_are_refused() {
        let labels = json!({
            "pod-security.kubernetes.io/enforce": "strict",
            "pod-security.kubernetes.io/warn-version": "1.29",
            "pod-security.kubernetes.io/audit": "baseline",
            "pod-security.kubernetes.io/audit-version": "v1.30",
        });
        let causes = label_causes(labels.as_object());
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.labels[pod-security.kubernetes.io/enforce]",
                "metadata.labels[pod-security.kubernetes.io/warn-version]"
            ]
        );
        assert!(causes[0].message.contains("\"privileged\", \"baseline\", \"restricted\""), "{}", causes[0].message);
    }

    #[test]
    fn existing_pods_are_grouped_by_their_reasons() {
        let reasons = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let pods = vec![
            ("a".to_string(), reasons(&["runAsNonRoot != true", "seccompProfile"])),
            ("b".to_string(), reasons(&["host namespaces"])),
            ("c".to_string(), reasons(&["runAsNonRoot != true", "seccompProfile"])),
            ("d".to_string(), reasons(&["runAsNonRoot != true", "seccompProfile"])),
            ("e".to_string(), reasons(&["host namespaces"])),
        ];
        assert_eq!(
            existing_pod_warnings("apps", Policy::RESTRICTED_LATEST, pods),
            [
                "existing pods in namespace \"apps\" violate the new PodSecurity enforce level \"restricted:latest\"",
                "a (and 2 other pods): runAsNonRoot != true, seccompProfile",
                "b (and 1 other pod): host namespaces",
            ]
        );
        assert!(existing_pod_warnings("apps", Policy::RESTRICTED_LATEST, vec![]).is_empty());
    }

    #[test]
    fn only_spec_changes_are_significant() {
        let pod = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "c"}]}});
        let mut relabelled = pod.clone();
        relabelled["metadata"]["labels"]["a"] = json!("2");
        relabelled["status"] = json!({"phase": "Running"});
        assert!(!significant_pod_update(&pod, &relabelled));
        let mut changed = pod.clone();
        changed["spec"]["containers"][0]["image"] = json!("busybox");
        assert!(significant_pod_update(&pod, &changed));
        let mut apparmor = pod.clone();
        apparmor["metadata"]["annotations"] = json!({"container.apparmor.security.beta.kubernetes.io/c": "unconfined"});
        assert!(significant_pod_update(&pod, &apparmor));
    }

    #[test]
    fn the_summary_reads_as_kubernetes_writes_it() {
        let (annotations, spec) = pod_parts(&json!({
            "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap();
        let violations = evaluate(Policy::RESTRICTED_LATEST, &annotations, &spec);
        assert_eq!(
            format!("pods \"x\" is forbidden: violates {}", summary(Policy::RESTRICTED_LATEST, &violations)),
            "pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false \
             (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities \
             (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or \
             container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must \
             set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
    }
}
