//! What the pod worker needs from image pulling: a runnable artifact on disk and which runtime
//! the image calls for. The images module provides it; tests can provide their own.

use std::path::PathBuf;
use std::sync::Arc;

use wharf_shim::BoxFuture;

pub use crate::images::PullProgress;

/// A pulled image, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// `wasmtime` or `youki`, as the image's content decides.
    pub runtime: &'static str,
    /// The Wasm blob; for Linux images the top unpacked layer (the rootfs is all of `layers`).
    pub path: PathBuf,
    /// Digest of the runnable content (the Wasm blob, or the manifest for Linux images).
    pub digest: String,
    /// `imageID` for the container status: `REPOSITORY@sha256:...`.
    pub image_id: String,
    /// What the image's config says to run and how (empty for Wasm artifacts).
    pub config: ImageConfig,
    /// Linux images: the unpacked layer directories, bottom first.
    pub layers: Vec<PathBuf>,
}

/// The runtime part of an image's config (`config.Entrypoint`, `config.Cmd`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries split at the first `=`, in the image's order.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// `config.User` as written (`1000`, `1000:1000`, `nobody`, `app:app`).
    pub user: Option<String>,
}

/// Why an image could not be pulled; the message is shown with ErrImagePull.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PullError(pub String);

/// Credentials from the pod's imagePullSecrets (`.dockerconfigjson` documents).
pub type PullSecrets = Vec<serde_json::Value>;

/// Where a pull reports how far it has got: the latest [`PullProgress`] replaces the previous
/// one (a `tokio::sync::watch` channel), so a slow reader sees fresh values and never blocks it.
pub type ProgressSender = tokio::sync::watch::Sender<PullProgress>;

pub trait ImagePuller: Send + Sync {
    /// Pulls `image` per `policy` (`Always`, `IfNotPresent`, `Never`), reporting on `progress`
    /// if given (nothing is sent when the image is already present).
    fn pull<'a>(
        &'a self,
        image: &'a str,
        policy: &'a str,
        secrets: &'a PullSecrets,
        progress: Option<&'a ProgressSender>,
    ) -> BoxFuture<'a, Result<Artifact, PullError>>;

    /// The images this puller holds, for node.status.images; `None` when it keeps no record.
    fn inventory(&self) -> Option<Arc<crate::images::ImageInventory>> {
        None
    }
}

impl ImageConfig {
    /// The `config` object of an image config document (`{"config": {"Entrypoint": ...}}`);
    /// missing or `null` fields are empty.
    pub fn from_image_config(document: &serde_json::Value) -> Self {
        let config = &document["config"];
        let strings = |key: &str| -> Vec<String> {
            config[key]
                .as_array()
                .map(|items| items.iter().filter_map(|item| item.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let text = |key: &str| config[key].as_str().filter(|value| !value.is_empty()).map(str::to_string);
        ImageConfig {
            entrypoint: strings("Entrypoint"),
            cmd: strings("Cmd"),
            env: strings("Env")
                .into_iter()
                .map(|entry| match entry.split_once('=') {
                    Some((key, value)) => (key.to_string(), value.to_string()),
                    None => (entry, String::new()),
                })
                .collect(),
            working_dir: text("WorkingDir"),
            user: text("User"),
        }
    }
}

/// Pulls through the node's image store: references without a registry host go to the
/// cluster's embedded registry (the API server's address) with the node token; others use the
/// pod's imagePullSecrets, else anonymous access. With several servers (which share their
/// registry's content), a pull from the embedded registry that fails is tried at the others.
pub struct RegistryPuller {
    store: crate::images::ImageStore,
    /// `host:port` of every server's embedded registry, the one that answered the agent first.
    cluster_registries: Vec<String>,
    /// The one of them that last served a pull: references without a host go there first, so
    /// images stay cached under one name while that server lives.
    preferred: std::sync::atomic::AtomicUsize,
    token: String,
    inventory: Arc<crate::images::ImageInventory>,
}

impl RegistryPuller {
    /// Opens the store under `root`, trusting `ca_pem` for the embedded registry of `servers`
    /// (the first is the one image references without a host name). Registries in
    /// `insecure_registries` (`host:port`) are reached over plain HTTP.
    pub fn open(
        root: &std::path::Path,
        servers: &[&str],
        ca_pem: &str,
        token: &str,
        insecure_registries: &[String],
    ) -> Result<Self, crate::AgentError> {
        let host = |server: &str| {
            server.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/').to_string()
        };
        let cluster_registries: Vec<String> = servers.iter().map(|s| host(s)).collect();
        let default_registry = cluster_registries
            .first()
            .cloned()
            .ok_or_else(|| crate::AgentError::Setup("no API server to pull cluster images from".into()))?;
        let options = crate::images::ClientOptions {
            ca_pem: Some(ca_pem.to_string()),
            insecure_registries: insecure_registries.to_vec(),
        };
        let store = crate::images::ImageStore::open(root, options)
            .map_err(|e| crate::AgentError::Setup(format!("image store: {e}")))?;
        let inventory = Arc::new(crate::images::ImageInventory::new(&default_registry));
        Ok(Self { store, cluster_registries, preferred: Default::default(), token: token.to_string(), inventory })
    }

    /// Fills the image inventory from what the store already holds (once, at start).
    pub async fn load_inventory(&self) {
        for image in self.store.tagged().await {
            self.inventory.record(&image, None).await;
        }
    }

    fn credentials(&self, registry: &str, secrets: &PullSecrets) -> crate::images::Credentials {
        if self.cluster_registries.iter().any(|r| r == registry) {
            return crate::images::Credentials::Bearer(self.token.clone());
        }
        secrets
            .iter()
            .filter_map(|doc| serde_json::to_vec(doc).ok())
            .find_map(|json| crate::images::docker_config_credentials(&json, registry).ok().flatten())
            .unwrap_or_default()
    }
}

impl ImagePuller for RegistryPuller {
    fn pull<'a>(
        &'a self,
        image: &'a str,
        policy: &'a str,
        secrets: &'a PullSecrets,
        progress: Option<&'a ProgressSender>,
    ) -> BoxFuture<'a, Result<Artifact, PullError>> {
        Box::pin(async move {
            use std::sync::atomic::Ordering;
            let preferred = self.preferred.load(Ordering::Relaxed);
            let reference = crate::images::Reference::parse(image, &self.cluster_registries[preferred])
                .map_err(|e| PullError(e.to_string()))?;
            let credentials = self.credentials(&reference.registry, secrets);
            let policy = crate::images::PullPolicy::from_spec(Some(policy).filter(|p| !p.is_empty()), &reference);
            let mut reference = reference;
            let mut pulled = self.store.pull_with_progress(&reference, &credentials, policy, progress).await;
            if pulled.is_err() && reference.registry == self.cluster_registries[preferred] {
                // Every server serves the same content: when this one fails, try the others.
                for (index, other) in self.cluster_registries.iter().enumerate().filter(|(i, _)| *i != preferred) {
                    let at_other = crate::images::Reference { registry: other.clone(), ..reference.clone() };
                    if let Ok(done) = self.store.pull_with_progress(&at_other, &credentials, policy, progress).await {
                        self.preferred.store(index, Ordering::Relaxed);
                        (reference, pulled) = (at_other, Ok(done));
                        break;
                    }
                }
            }
            let pulled = pulled.map_err(|e| PullError(e.to_string()))?;
            self.inventory.record(&pulled, Some(image)).await;
            let image_id = format!("{}/{}@{}", reference.registry, reference.repository, pulled.digest);
            Ok(match pulled.runtime {
                crate::images::Runtime::Wasm { module, digest } => Artifact {
                    runtime: "wasmtime",
                    path: module,
                    digest,
                    image_id,
                    config: ImageConfig::default(),
                    layers: Vec::new(),
                },
                crate::images::Runtime::Linux { layers } => Artifact {
                    runtime: "youki",
                    path: layers.last().map(|l| l.dir.clone()).unwrap_or_default(),
                    digest: pulled.manifest_digest,
                    image_id,
                    config: ImageConfig::from_image_config(&pulled.config),
                    layers: layers.into_iter().map(|l| l.dir).collect(),
                },
            })
        })
    }

    fn inventory(&self) -> Option<Arc<crate::images::ImageInventory>> {
        Some(self.inventory.clone())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn image_configs_give_entrypoint_cmd_env_dir_and_user() {
        let document = json!({"architecture": "amd64", "config": {
            "Entrypoint": ["/bin/app", "--serve"], "Cmd": null,
            "Env": ["PATH=/usr/bin:/bin", "EQUALS=a=b", "EMPTY=", "BARE"],
            "WorkingDir": "/srv", "User": "1000:1000"}});
        let config = ImageConfig::from_image_config(&document);
        assert_eq!(config.entrypoint, ["/bin/app", "--serve"]);
        assert!(config.cmd.is_empty());
        let env: Vec<(&str, &str)> = config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(env, [("PATH", "/usr/bin:/bin"), ("EQUALS", "a=b"), ("EMPTY", ""), ("BARE", "")]);
        assert_eq!(config.working_dir.as_deref(), Some("/srv"));
        assert_eq!(config.user.as_deref(), Some("1000:1000"));

        let bare = ImageConfig::from_image_config(&json!({"config": {"Cmd": ["sh"], "WorkingDir": ""}}));
        assert_eq!(bare, ImageConfig { cmd: vec!["sh".into()], ..Default::default() });
        assert_eq!(ImageConfig::from_image_config(&serde_json::Value::Null), ImageConfig::default());
    }
}
