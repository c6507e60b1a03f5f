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
    /// The image's default argv (entrypoint + cmd), if it has one.
    pub default_args: Vec<String>,
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
