//! What the pod worker needs from image pulling: a runnable artifact on disk and which runtime
//! the image calls for. The images module provides it; tests can provide their own.

use std::path::PathBuf;

use wharf_shim::BoxFuture;

/// A pulled image, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// `wasmtime` or `youki`, as the image's content decides.
    pub runtime: &'static str,
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

pub trait ImagePuller: Send + Sync {
    /// Pulls `image` per `policy` (`Always`, `IfNotPresent`, `Never`).
    fn pull<'a>(
        &'a self,
        image: &'a str,
        policy: &'a str,
        secrets: &'a PullSecrets,
    ) -> BoxFuture<'a, Result<Artifact, PullError>>;
}

/// Pulls through the node's image store: references without a registry host go to the
/// cluster's embedded registry (the API server's address) with the node token; others use the
/// pod's imagePullSecrets, else anonymous access.
pub struct RegistryPuller {
    store: crate::images::ImageStore,
    default_registry: String,
    token: String,
}

impl RegistryPuller {
    /// Opens the store under `root`, trusting `ca_pem` for the embedded registry at `server`.
    pub fn open(root: &std::path::Path, server: &str, ca_pem: &str, token: &str) -> Result<Self, crate::AgentError> {
        let default_registry =
            server.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/').to_string();
        let options = crate::images::ClientOptions { ca_pem: Some(ca_pem.to_string()), ..Default::default() };
        let store = crate::images::ImageStore::open(root, options)
            .map_err(|e| crate::AgentError::Setup(format!("image store: {e}")))?;
        Ok(Self { store, default_registry, token: token.to_string() })
    }

    fn credentials(&self, registry: &str, secrets: &PullSecrets) -> crate::images::Credentials {
        if registry == self.default_registry {
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
    ) -> BoxFuture<'a, Result<Artifact, PullError>> {
        Box::pin(async move {
            let reference =
                crate::images::Reference::parse(image, &self.default_registry).map_err(|e| PullError(e.to_string()))?;
            let credentials = self.credentials(&reference.registry, secrets);
            let policy = crate::images::PullPolicy::from_spec(Some(policy).filter(|p| !p.is_empty()), &reference);
            let pulled =
                self.store.pull(&reference, &credentials, policy).await.map_err(|e| PullError(e.to_string()))?;
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
                    path: layers.first().map(|l| l.path.clone()).unwrap_or_default(),
                    digest: pulled.manifest_digest,
                    image_id,
                    config: ImageConfig::default(),
                    layers: Vec::new(),
                },
            })
        })
    }
}
