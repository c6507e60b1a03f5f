//! Images: references, pulling from OCI distribution registries (Wharf's embedded one, or any
//! other) into a content-addressed store, unpacking Linux layers, the Wasm-or-Linux decision,
//! and pushing for the CLI.
//!
//! HTTP is `reqwest` on rustls (ring, like the rest of Wharf) rather than `oci-client`: the
//! distribution calls are few, and owning them keeps what matters here in one place — the
//! cluster CA next to the system roots, the bearer token sent up front, streaming every blob
//! to disk through its digest check, and errors split into the kinds kubelet reports.
//!
//! ```no_run
//! # async fn example() -> Result<(), wharf_runtime::images::ImageError> {
//! use wharf_runtime::images::*;
//! let store = ImageStore::open("/var/lib/wharf/images", ClientOptions::default())?;
//! let reference = Reference::parse("hello:v1", "127.0.0.1:6443")?;
//! let image = store.pull(&reference, &Credentials::Bearer("token".into()), PullPolicy::IfNotPresent).await?;
//! if let Runtime::Wasm { module, .. } = &image.runtime { println!("{}", module.display()) }
//! # Ok(()) }
//! ```

mod auth;
mod client;
mod inventory;
mod manifest;
mod reference;
mod store;
mod unpack;

use std::path::PathBuf;

pub use auth::{Credentials, docker_config_credentials};
pub use client::{BlobSource, ClientOptions, ImageSummary, PushBlob, PushManifest, RegistryClient};
pub use inventory::{HeldImage, ImageInventory, MAX_NODE_IMAGES, node_images};
pub use manifest::{
    DOCKER_LIST, DOCKER_MANIFEST, Descriptor, ImageIndex, ImageManifest, OCI_CONFIG, OCI_INDEX, OCI_LAYER,
    OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST, Platform, RuntimeKind, WASM_CONFIG, WASM_LAYER, WASM_LAYER_TYPES,
    runtime_kind, select_platform,
};
pub use reference::Reference;
pub use store::{ImageStore, Layer, PullPolicy, PullProgress, PulledImage, Runtime};

/// Why an image could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// The registry has no such repository, tag or digest.
    #[error("{reference}: not found: {message}")]
    NotFound { reference: String, message: String },
    /// The registry refused the credentials (or wanted some).
    #[error("{registry}: unauthorized: {message}")]
    Unauthorized { registry: String, message: String },
    /// No connection: DNS, refused, TLS, timeout, or the transfer broke off.
    #[error("{registry}: unreachable: {message}")]
    Unreachable { registry: String, message: String },
    /// Any other error answer of the registry.
    #[error("{registry}: {message} (HTTP {status})")]
    Registry { registry: String, status: u16, message: String },
    /// The content is wrong or unsupported: digest mismatch, bad manifest, no usable platform.
    #[error("{reference}: {message}")]
    Invalid { reference: String, message: String },
    #[error("{reference}: not present on this node and the pull policy is Never")]
    NotPresent { reference: String },
    /// Bad credentials or TLS settings given to the client.
    #[error("{0}")]
    Credentials(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl ImageError {
    /// The container's waiting reason in Kubernetes terms.
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::InvalidReference { .. } => "InvalidImageName",
            ImageError::NotPresent { .. } => "ErrImageNeverPull",
            _ => "ErrImagePull",
        }
    }
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;
