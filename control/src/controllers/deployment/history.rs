//! Revisions of a Deployment: the pod-template-hash that names its ReplicaSets, which
//! ReplicaSet runs the current template, the revision annotations kubectl's `rollout history`
//! and `rollout undo` read, and which old ReplicaSets revisionHistoryLimit lets go.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// The longest revision-history annotation kept, in characters (as Kubernetes).
const MAX_HISTORY_CHARS: usize = 2000;
fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    t
}

/// Whether two templates are the same but for the pod-template-hash label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

/// The object's revision annotation (0 when missing or not a number).
pub fn revision(meta: &ObjectMeta) -> i64 {
    meta.annotations.as_ref().and_then(|a| a.get(REVISION)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn skip_copy(key: &str) -> bool {
    matches!(key, LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO)
}

/// Sets the desired- and max-replicas annotations; whether anything changed.
pub fn set_replicas_annotations(annotations: &mut BTreeMap<String, String>, desired: i32, max: i32) -> bool {
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.into(), value);
            changed = true;
        }
    }
    changed
}

/// Kubernetes' `SetNewReplicaSetAnnotations`: the Deployment's own annotations are copied
/// (kubernetes.io/change-cause among them; not last-applied nor the revision ones), the
/// revision rises to `new_revision` (the former one joins revision-history, as on a rollback),
/// and a ReplicaSet about to be created gets its replicas annotations. Whether anything changed.
pub fn set_new_rs_annotations(
    deployment: &BTreeMap<String, String>,
    rs: &mut BTreeMap<String, String>,
    new_revision: i64,
    replicas: Option<(i32, i32)>,
) -> bool {
    let mut changed = false;
    for (key, value) in deployment {
        if !skip_copy(key) && rs.get(key) != Some(value) {
            rs.insert(key.clone(), value.clone());
            changed = true;
        }
    }
    let old = rs.get(REVISION).cloned();
    let old_revision = match old.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return changed,
    };
    if old_revision < new_revision {
        rs.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = rs.get(REVISION_HISTORY).cloned().unwrap_or_default();
            let mut revisions: Vec<&str> = history.split(',').filter(|r| !r.is_empty()).collect();
            revisions.push(&old);
            while revisions.join(",").len() > MAX_HISTORY_CHARS && revisions.len() > 1 {
                revisions.remove(0);
            }
            rs.insert(REVISION_HISTORY.into(), revisions.join(","));
        }
    }
    if let Some((desired, max)) = replicas {
        changed |= set_replicas_annotations(rs, desired, max);
    }
    changed
}

/// The old ReplicaSets to delete so at most `limit` remain: lowest revisions first, only those
/// scaled to 0 with no pods left, their spec observed, and not already being deleted.
pub fn history_to_delete(old: &[ReplicaSet], limit: i32) -> Vec<String> {
    let mut alive: Vec<&ReplicaSet> = old.iter().filter(|r| r.metadata.deletion_timestamp.is_none()).collect();
    let excess = alive.len().saturating_sub(usize::try_from(limit).unwrap_or(0));
    alive.sort_by(|a, b| {
        let created = |r: &ReplicaSet| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
        revision(&a.metadata).cmp(&revision(&b.metadata)).then_with(|| created(a).cmp(&created(b)))
    });
    alive
        .into_iter()
        .take(excess)
        .filter(|r| {
            let status = r.status.as_ref();
            let spec_replicas = r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let observed = status.and_then(|s| s.observed_generation).unwrap_or(0);
            status.map(|s| s.replicas).unwrap_or(0) == 0
                && spec_replicas == 0
                && r.metadata.generation.unwrap_or(0) <= observed
        })
        .filter_map(|r| r.metadata.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "ticker", "image": image}]},
        }))
        .unwrap()
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let a = template("ticker:v1");
        let mut b = a.clone();
        b.metadata.as_mut().unwrap().labels.as_mut().unwrap().insert(HASH_LABEL.into(), "abc".into());
        assert!(equal_ignore_hash(&a, &b));
        assert!(!equal_ignore_hash(&a, &template("ticker:v2")));
    }

    #[test]
    fn new_replica_set_annotations_copy_and_bump_the_revision() {
        let deployment =
            annotations(&[("kubernetes.io/change-cause", "kubectl set image"), (REVISION, "1"), (LAST_APPLIED, "{}")]);
        let mut rs = BTreeMap::new();
        assert!(set_new_rs_annotations(&deployment, &mut rs, 2, Some((5, 7))));
        assert_eq!(
            rs,
            annotations(&[
                ("kubernetes.io/change-cause", "kubectl set image"),
                (REVISION, "2"),
                (DESIRED_REPLICAS, "5"),
                (MAX_REPLICAS, "7"),
            ])
        );
        assert!(!set_new_rs_annotations(&deployment, &mut rs, 2, None), "nothing new");
        // Rolling back to it: revision 2 → 4, history remembers 2.
        assert!(set_new_rs_annotations(&deployment, &mut rs, 4, None));
        assert_eq!((rs[REVISION].as_str(), rs[REVISION_HISTORY].as_str()), ("4", "2"));
        assert!(set_new_rs_annotations(&deployment, &mut rs, 6, None));
        assert_eq!(rs[REVISION_HISTORY], "2,4");
        assert!(!set_new_rs_annotations(&deployment, &mut rs, 3, None), "a revision never goes down");
    }

    #[test]
    fn history_keeps_the_limit_and_only_deletes_empty_sets() {
        let rs = |name: &str, revision: i64, replicas: i32, pods: i32| -> ReplicaSet {
            serde_json::from_value(json!({
                "metadata": {"name": name, "generation": 1, "annotations": {REVISION: revision.to_string()}},
                "spec": {"replicas": replicas, "selector": {}},
                "status": {"replicas": pods, "observedGeneration": 1},
            }))
            .unwrap()
        };
        let old = [rs("r3", 3, 0, 0), rs("r1", 1, 0, 0), rs("r2", 2, 0, 1), rs("r4", 4, 0, 0)];
        assert_eq!(history_to_delete(&old, 1), vec!["r1".to_string(), "r3".to_string()], "r2 still has a pod");
        assert!(history_to_delete(&old, 10).is_empty());
        assert_eq!(history_to_delete(&old, 0).len(), 3);
    }
}
