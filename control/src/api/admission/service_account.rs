//! The ServiceAccount plugin: a pod runs as a ServiceAccount (`default` unless it names one)
//! that must exist, and gets its token mounted unless it opts out, as Kubernetes'
//! `plugin/pkg/admission/serviceaccount` does: a projected volume `kube-api-access-XXXXX` (a
//! bound token, the cluster CA, the namespace) mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container and init container.

use serde_json::{Value, json};

use super::{Operation, Request};
use crate::api::ApiState;
use crate::error::{Error, Result};
use crate::store::ObjectKey;

/// The ServiceAccount a pod that names none runs as.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Where the token volume is mounted in every container.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The prefix of the token volume's name.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The ConfigMap holding the cluster CA in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// The token's lifetime kube-apiserver writes into the volume (an hour and 7 seconds, marking
/// the tokens it could extend).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// Kubernetes' annotation of mirror pods, which the plugin leaves alone.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

pub fn mutate(state: &ApiState, request: &Request<'_>, object: &mut Value) -> Result<()> {
    if !(request.is("", "Pod") && request.operation == Operation::Create) {
        return Ok(());
    }
    if !object["metadata"]["annotations"][MIRROR_ANNOTATION].is_null() {
        return Ok(());
    }
    let name = match object["spec"]["serviceAccountName"].as_str().filter(|n| !n.is_empty()) {
        Some(name) => name.to_string(),
        None => object["spec"]["serviceAccount"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
            .to_string(),
    };
    let account = state.store.get(&ObjectKey::new("serviceaccounts", request.namespace, &name));
    // `default` is made by the ServiceAccount controller moments after its namespace: a pod
    // created in between must not fail for it.
    if account.is_none() && name != DEFAULT_SERVICE_ACCOUNT {
        return Err(Error::Forbidden(format!(
            "pods {:?} is forbidden: error looking up service account {}/{name}: serviceaccount {name:?} not found",
            request.name, request.namespace
        )));
    }
    admit(object, &name, account.as_ref().map(|a| &a.object), &random_suffix());
    Ok(())
}

/// Sets the pod's ServiceAccount and mounts its token unless the pod or the account opts out.
/// Pure: `suffix` names a new token volume.
fn admit(pod: &mut Value, account_name: &str, account: Option<&Value>, suffix: &str) {
    let spec = &mut pod["spec"];
    spec["serviceAccountName"] = account_name.into();
    spec["serviceAccount"] = account_name.into();
    let automount = spec["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| account.and_then(|a| a["automountServiceAccountToken"].as_bool()))
        .unwrap_or(true);
    if automount {
        mount_token(spec, suffix);
    }
}

fn mount_token(spec: &mut Value, suffix: &str) {
    let existing = spec["volumes"]
        .as_array()
        .and_then(|v| v.iter().find_map(|v| v["name"].as_str().filter(|n| n.starts_with(VOLUME_PREFIX))))
        .map(str::to_string);
    let volume_name = existing.clone().unwrap_or_else(|| format!("{VOLUME_PREFIX}{suffix}"));
    let mount = json!({"mountPath": TOKEN_MOUNT_PATH, "name": volume_name, "readOnly": true});
    let mut needs_volume = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec[list].as_array_mut() else { continue };
        for container in containers {
            let mounted = container["volumeMounts"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["mountPath"] == TOKEN_MOUNT_PATH));
            if mounted {
                continue;
            }
            if !container["volumeMounts"].is_array() {
                container["volumeMounts"] = json!([]);
            }
            if let Some(mounts) = container["volumeMounts"].as_array_mut() {
                mounts.push(mount.clone());
            }
            needs_volume = true;
        }
    }
    if existing.is_none() && needs_volume {
        if !spec["volumes"].is_array() {
            spec["volumes"] = json!([]);
        }
        if let Some(volumes) = spec["volumes"].as_array_mut() {
            volumes.push(token_volume(&volume_name));
        }
    }
}

/// The projected volume of a pod's token, CA and namespace, as Kubernetes writes it.
pub fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [
                    {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
                ]}}
            ]
        }
    })
}

/// Five characters of Kubernetes' name-suffix alphabet (no vowels, no look-alikes).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHABET[rand::Rng::random_range(&mut rng, 0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"name": "web"}, "spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "app", "image": "busybox", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]
        }})
    }

    #[test]
    fn pods_run_as_default_and_get_the_token_volume() {
        let mut p = pod();
        admit(&mut p, "default", None, "abcde");
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["serviceAccount"], "default");
        assert_eq!(p["spec"]["volumes"][1], token_volume("kube-api-access-abcde"));
        let expected = json!({"mountPath": TOKEN_MOUNT_PATH, "name": "kube-api-access-abcde", "readOnly": true});
        assert_eq!(p["spec"]["initContainers"][0]["volumeMounts"], json!([expected]));
        assert_eq!(p["spec"]["containers"][0]["volumeMounts"][1], expected);
        // Admitting again (a pod that has the volume) adds nothing.
        let before = p.clone();
        admit(&mut p, "default", None, "zzzzz");
        assert_eq!(p, before);
    }

    #[test]
    fn pods_and_accounts_opt_out_of_the_token() {
        let mut p = pod();
        p["spec"]["automountServiceAccountToken"] = false.into();
        admit(&mut p, "builder", Some(&json!({"automountServiceAccountToken": true})), "abcde");
        assert_eq!(p["spec"]["serviceAccountName"], "builder");
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);

        let mut p = pod();
        admit(&mut p, "builder", Some(&json!({"automountServiceAccountToken": false})), "abcde");
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
        assert!(p["spec"]["initContainers"][0]["volumeMounts"].is_null());

        // The pod's own choice wins over the account's.
        let mut p = pod();
        p["spec"]["automountServiceAccountToken"] = true.into();
        admit(&mut p, "builder", Some(&json!({"automountServiceAccountToken": false})), "abcde");
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_container_with_its_own_mount_at_the_path_keeps_it() {
        let mut p = pod();
        p["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "data", "mountPath": TOKEN_MOUNT_PATH}]);
        p["spec"]["initContainers"] = json!([]);
        admit(&mut p, "default", None, "abcde");
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1, "no container needs the volume");
        assert_eq!(random_suffix().len(), 5);
    }
}
