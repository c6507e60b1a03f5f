//! A container's environment as Kubernetes defines it: literal values, `valueFrom`
//! (configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef) and `envFrom`, read through the API.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::Api;

/// Why a container's configuration cannot be built (reason CreateContainerConfigError).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Reads ConfigMaps and Secrets of the pod's namespace, once per container start.
pub struct Sources {
    configmaps: Api<ConfigMap>,
    secrets: Api<Secret>,
}

impl Sources {
    pub fn new(client: &kube::Client, namespace: &str) -> Self {
        Self {
            configmaps: Api::namespaced(client.clone(), namespace),
            secrets: Api::namespaced(client.clone(), namespace),
        }
    }

    /// The API client the sources read through.
    pub fn client(&self) -> kube::Client {
        self.configmaps.clone().into_client()
    }

    pub async fn configmap(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
        let cm =
            self.configmaps.get_opt(name).await.map_err(|e| ConfigError(format!("reading configmap {name:?}: {e}")))?;
        Ok(cm.map(|cm| {
            let mut data = cm.data.unwrap_or_default();
            for (k, v) in cm.binary_data.unwrap_or_default() {
                data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
            }
            data
        }))
    }

    pub async fn secret(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, ConfigError> {
        let secret =
            self.secrets.get_opt(name).await.map_err(|e| ConfigError(format!("reading secret {name:?}: {e}")))?;
        Ok(secret.map(|s| {
            let mut data: BTreeMap<String, Vec<u8>> =
                s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
            for (k, v) in s.string_data.unwrap_or_default() {
                data.insert(k, v.into_bytes());
            }
            data
        }))
    }
}

/// The value of a `fieldRef` path on the pod.
pub fn field_value(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let from_map = |map: &Option<BTreeMap<String, String>>, prefix: &str| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()),
        _ if path.starts_with("metadata.labels['") => from_map(&meta.labels, "metadata.labels['"),
        _ if path.starts_with("metadata.annotations['") => from_map(&meta.annotations, "metadata.annotations['"),
        _ => None,
    }
}

/// The container's environment, in Kubernetes' order: envFrom first, then env (later wins).
pub async fn resolve(
    pod: &Pod,
    container: &Container,
    sources: &Sources,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, key: String, value: String| {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(cm) = &from.config_map_ref {
            match sources.configmap(&cm.name).await? {
                Some(data) => data.into_iter().for_each(|(k, v)| set(&mut env, format!("{prefix}{k}"), v)),
                None if cm.optional == Some(true) => {}
                None => return Err(ConfigError(format!("configmap {:?} not found", cm.name))),
            }
        }
        if let Some(secret) = &from.secret_ref {
            match sources.secret(&secret.name).await? {
                Some(data) => data
                    .into_iter()
                    .for_each(|(k, v)| set(&mut env, format!("{prefix}{k}"), String::from_utf8_lossy(&v).into_owned())),
                None if secret.optional == Some(true) => {}
                None => return Err(ConfigError(format!("secret {:?} not found", secret.name))),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => var.value.clone().unwrap_or_default(),
            Some(from) => {
                if let Some(key_ref) = &from.config_map_key_ref {
                    let data = sources.configmap(&key_ref.name).await?;
                    match data.and_then(|d| d.get(&key_ref.key).cloned()) {
                        Some(v) => v,
                        None if key_ref.optional == Some(true) => continue,
                        None => {
                            return Err(ConfigError(format!(
                                "couldn't find key {} in ConfigMap {}/{}",
                                key_ref.key,
                                pod.metadata.namespace.as_deref().unwrap_or_default(),
                                key_ref.name
                            )));
                        }
                    }
                } else if let Some(key_ref) = &from.secret_key_ref {
                    let data = sources.secret(&key_ref.name).await?;
                    match data.and_then(|d| d.get(&key_ref.key).cloned()) {
                        Some(v) => String::from_utf8_lossy(&v).into_owned(),
                        None if key_ref.optional == Some(true) => continue,
                        None => {
                            return Err(ConfigError(format!(
                                "couldn't find key {} in Secret {}/{}",
                                key_ref.key,
                                pod.metadata.namespace.as_deref().unwrap_or_default(),
                                key_ref.name
                            )));
                        }
                    }
                } else if let Some(field) = &from.field_ref {
                    field_value(pod, &field.field_path)
                        .ok_or_else(|| ConfigError(format!("unsupported fieldRef {:?}", field.field_path)))?
                } else if let Some(resource) = &from.resource_field_ref {
                    resource_value(container, &resource.resource)
                } else {
                    String::new()
                }
            }
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

/// `resourceFieldRef` values, as plain numbers the way the kubelet renders them.
fn resource_value(container: &Container, resource: &str) -> String {
    let resources = container.resources.as_ref();
    let (map, key) = match resource.split_once('.') {
        Some(("limits", key)) => (resources.and_then(|r| r.limits.as_ref()), key),
        Some(("requests", key)) => (resources.and_then(|r| r.requests.as_ref()), key),
        _ => (None, resource),
    };
    map.and_then(|m| m.get(key)).map(|q| q.0.clone()).unwrap_or_else(|| "0".into())
}

/// Decodes base64 the way Secret data arrives over JSON.
pub fn decode_base64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_refs_read_the_pod() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"podIP": "10.0.0.5"}
        }))
        .unwrap();
        assert_eq!(field_value(&pod, "metadata.name").as_deref(), Some("p"));
        assert_eq!(field_value(&pod, "spec.nodeName").as_deref(), Some("n1"));
        assert_eq!(field_value(&pod, "status.podIP").as_deref(), Some("10.0.0.5"));
        assert_eq!(field_value(&pod, "metadata.labels['app']").as_deref(), Some("web"));
        assert_eq!(field_value(&pod, "metadata.labels['none']").as_deref(), Some(""));
        assert_eq!(field_value(&pod, "spec.bogus"), None);
    }
}
