//! The node's image store: blobs kept content-addressed under one root and shared by every
//! image, the digest each tag resolved to, pulls that download only what is missing, and the
//! layers of Linux images unpacked once for every image that has them.
//!
//! ```text
//! blobs/sha256/<hex>                        manifests, configs and layers, each verified
//! layers/sha256/<diff_id hex>/              a Linux layer unpacked: an overlayfs lower dir
//! refs/<registry>/<repository>/_tags/<tag>  the digest the tag named at its last pull
//! tmp/                                      downloads and unpacking in progress
//! ```
//!
//! Unpacked layers are named by their `diff_id` (the digest of the uncompressed tar), which the
//! unpacker verifies: a directory there holds exactly that content, whichever compressed blob it
//! came from, so images that share a layer share its directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;

use super::auth::Credentials;
use super::client::{ClientOptions, RegistryClient};
use super::manifest::{self, Descriptor, ImageManifest, Parsed, RuntimeKind, WASM_LAYER_TYPES};
use super::reference::{Reference, valid_digest};
use super::{ImageError, Result, unpack};

/// Blobs downloaded at once by one pull.
const PARALLEL_DOWNLOADS: usize = 3;

/// Kubernetes' `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The container's `imagePullPolicy`; when unset (or unknown), kubelet's default: `Always`
    /// for `:latest` or an untagged reference without a digest, else `IfNotPresent`.
    pub fn from_spec(policy: Option<&str>, reference: &Reference) -> Self {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Never") => PullPolicy::Never,
            _ if reference.digest.is_none() && reference.tag.as_deref().is_none_or(|t| t == "latest") => {
                PullPolicy::Always
            }
            _ => PullPolicy::IfNotPresent,
        }
    }
}

/// One layer of a Linux image, in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The blob's digest, as the manifest lists it.
    pub digest: String,
    /// e.g. `application/vnd.oci.image.layer.v1.tar+gzip`: tells the unpacker the compression.
    pub media_type: String,
    pub size: u64,
    /// The blob as downloaded.
    pub path: PathBuf,
    /// The config's `rootfs.diff_ids` entry: the digest of the uncompressed tar.
    pub diff_id: String,
    /// The layer unpacked (whiteouts as overlayfs reads them): use it as an overlay lower dir.
    pub dir: PathBuf,
}

/// How far a pull has got, sent on the watch channel given to [`ImageStore::pull_with_progress`]
/// each time a chunk arrives or a layer is done.
///
/// Totals cover the layers of the image this node runs (the config is not counted); layers the
/// store already had count as done from the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullProgress {
    /// Layer bytes in the store: present before the pull or downloaded and verified so far.
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Layers downloaded, verified and (for Linux images) unpacked.
    pub layers_done: usize,
    pub layers_total: usize,
}

/// What runs the image, with the files it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// A Wasm module or component: the `.wasm` blob and its digest.
    Wasm { module: PathBuf, digest: String },
    /// A Linux container image: its layers, bottom first, each unpacked.
    Linux { layers: Vec<Layer> },
}

impl Runtime {
    pub fn kind(&self) -> RuntimeKind {
        match self {
            Runtime::Wasm { .. } => RuntimeKind::Wasm,
            Runtime::Linux { .. } => RuntimeKind::Linux,
        }
    }
}

/// An image whose blobs are all in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct PulledImage {
    pub reference: Reference,
    /// The digest the reference resolved to (an index's, for a multi-platform image): the
    /// container status's `imageID`.
    pub digest: String,
    /// The image manifest chosen for this node.
    pub manifest_digest: String,
    /// The image config (`config.Entrypoint`, `config.Env`, ... for Linux images); `null` when
    /// the config blob is not JSON.
    pub config: serde_json::Value,
    pub runtime: Runtime,
}

/// The node's images: a content-addressed blob store and the client that fills it.
pub struct ImageStore {
    root: PathBuf,
    client: RegistryClient,
    /// One lock per layer being unpacked (by diff_id), so concurrent pulls unpack it once.
    unpacking: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ImageStore {
    /// Opens (creating if needed) the store under `root`; `options` say how registries are reached.
    pub fn open(root: impl Into<PathBuf>, options: ClientOptions) -> Result<Self> {
        let root = root.into();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |e| ImageError::Io { path, source: e }
        };
        for dir in ["blobs/sha256", "layers/sha256", "refs"] {
            std::fs::create_dir_all(root.join(dir)).map_err(io(&root.join(dir)))?;
        }
        // Whatever is in tmp/ was being downloaded or unpacked when the process stopped.
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(Self { root, client: RegistryClient::new(options)?, unpacking: Mutex::default() })
    }

    /// The client this store pulls with.
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    fn blob_path(&self, digest: &str, what: &str) -> Result<PathBuf> {
        match digest.strip_prefix("sha256:") {
            Some(hex) if valid_digest(digest) => Ok(self.root.join("blobs/sha256").join(hex)),
            _ => Err(ImageError::Invalid {
                reference: what.to_string(),
                message: format!("unsupported digest {digest:?} (only sha256 is)"),
            }),
        }
    }

    /// Where the layer whose uncompressed digest is `diff_id` is unpacked.
    fn layer_dir(&self, diff_id: &str, what: &str) -> Result<PathBuf> {
        match diff_id.strip_prefix("sha256:") {
            Some(hex) if valid_digest(diff_id) => Ok(self.root.join("layers/sha256").join(hex)),
            _ => Err(ImageError::Invalid {
                reference: what.to_string(),
                message: format!("unsupported diff_id {diff_id:?} in the image config (only sha256 is)"),
            }),
        }
    }

    fn temp_path(&self) -> PathBuf {
        self.root.join("tmp").join(uuid::Uuid::new_v4().to_string())
    }

    /// Where the digest a tag named is remembered; `None` for references by digest.
    fn tag_path(&self, reference: &Reference) -> Option<PathBuf> {
        if reference.digest.is_some() {
            return None;
        }
        let tag = reference.tag.as_deref().unwrap_or("latest");
        Some(self.root.join("refs").join(&reference.registry).join(&reference.repository).join("_tags").join(tag))
    }

    async fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let io = |e| ImageError::Io { path: path.to_path_buf(), source: e };
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let temp = self.temp_path();
        tokio::fs::write(&temp, bytes).await.map_err(io)?;
        tokio::fs::rename(&temp, path).await.map_err(io)
    }

    /// The image if everything it needs is already in the store.
    pub async fn local(&self, reference: &Reference) -> Result<Option<PulledImage>> {
        let digest = match (&reference.digest, self.tag_path(reference)) {
            (Some(digest), _) => digest.clone(),
            (None, Some(path)) => match tokio::fs::read_to_string(&path).await {
                Ok(digest) => digest.trim().to_string(),
                Err(_) => return Ok(None),
            },
            (None, None) => return Ok(None),
        };
        self.load(reference, &digest).await
    }

    /// Every tagged image the store holds, as its last pull left it (for the node's image
    /// inventory at start; images pulled only by digest are not remembered by name).
    pub async fn tagged(&self) -> Vec<PulledImage> {
        let refs = self.root.join("refs");
        let found = tokio::task::spawn_blocking(move || tag_references(&refs)).await.unwrap_or_default();
        let mut images = Vec::new();
        for reference in found {
            match self.local(&reference).await {
                Ok(Some(image)) => images.push(image),
                Ok(None) => {}
                Err(e) => tracing::warn!(image = %reference, error = %e, "cannot read a stored image"),
            }
        }
        images
    }

    /// Makes `reference` present under `policy` and describes it. Only missing blobs are
    /// downloaded; each is verified against its digest and size before it enters the store, and
    /// the layers of a Linux image are unpacked.
    pub async fn pull(
        &self,
        reference: &Reference,
        credentials: &Credentials,
        policy: PullPolicy,
    ) -> Result<PulledImage> {
        self.pull_with_progress(reference, credentials, policy, None).await
    }

    /// [`ImageStore::pull`], reporting on `progress` as it goes.
    pub async fn pull_with_progress(
        &self,
        reference: &Reference,
        credentials: &Credentials,
        policy: PullPolicy,
        progress: Option<&tokio::sync::watch::Sender<PullProgress>>,
    ) -> Result<PulledImage> {
        if policy != PullPolicy::Always {
            if let Some(image) = self.local(reference).await? {
                return Ok(image);
            }
            if policy == PullPolicy::Never {
                return Err(ImageError::NotPresent { reference: reference.to_string() });
            }
        }
        let what = reference.to_string();
        let repository = &reference.repository;
        let scope = format!("repository:{repository}:pull");
        let session = self.client.session(&reference.registry, &scope, credentials).await?;
        let resolved = self.client.resolve(&session, reference).await?;
        for fetched in &resolved.manifests {
            let path = self.blob_path(&fetched.digest, &what)?;
            if !path.exists() {
                self.write_atomic(&path, &fetched.bytes).await?;
            }
        }
        let manifest = &resolved.manifest;
        // The config first: it says whether layers are unpacked, and what they must unpack to.
        let config_path = self.blob_path(&manifest.config.digest, &what)?;
        if !tokio::fs::try_exists(&config_path).await.unwrap_or(false) {
            let temp = self.temp_path();
            self.client.download(&session, repository, &manifest.config, &config_path, &temp, &|_| {}).await?;
        }
        let config = self.read_blob(&manifest.config.digest, &what).await?.unwrap_or_default();
        let config = serde_json::from_slice(&config).unwrap_or(serde_json::Value::Null);
        let mut layers = self.layers(manifest, &config, &what)?;
        let mut seen = std::collections::HashSet::new();
        layers.retain(|layer| seen.insert(layer.digest.clone()));
        let mut present = Vec::with_capacity(layers.len());
        for layer in &layers {
            present.push(tokio::fs::try_exists(&layer.path).await.unwrap_or(false));
        }
        if let Some(progress) = progress {
            progress.send_replace(PullProgress {
                bytes_done: layers.iter().zip(&present).filter(|(_, p)| **p).map(|(l, _)| l.size).sum(),
                bytes_total: layers.iter().map(|l| l.size).sum(),
                layers_done: 0,
                layers_total: layers.len(),
            });
        }
        let report = |change: &dyn Fn(&mut PullProgress)| {
            if let Some(progress) = progress {
                progress.send_modify(|p| change(p));
            }
        };
        // Owned layers keep the future `Send` (callers box it as a `BoxFuture`).
        let (session, what, report) = (&session, &what, &report);
        let linux = matches!(manifest::runtime_kind(manifest, &config), RuntimeKind::Linux);
        futures::stream::iter(layers.into_iter().zip(present))
            .map(|(layer, present)| async move {
                if !present {
                    let blob = Descriptor {
                        media_type: layer.media_type.clone(),
                        digest: layer.digest.clone(),
                        size: layer.size,
                        platform: None,
                        annotations: Default::default(),
                    };
                    let counted = |bytes: u64| report(&|p: &mut PullProgress| p.bytes_done += bytes);
                    self.client.download(session, repository, &blob, &layer.path, &self.temp_path(), &counted).await?;
                }
                if linux {
                    self.unpack(&layer, what).await?;
                }
                report(&|p: &mut PullProgress| p.layers_done += 1);
                Ok::<(), ImageError>(())
            })
            .buffer_unordered(PARALLEL_DOWNLOADS)
            .try_collect::<Vec<()>>()
            .await?;
        let top = &resolved.manifests[0].digest;
        if let Some(path) = self.tag_path(reference) {
            self.write_atomic(&path, top.as_bytes()).await?;
        }
        self.load(reference, top).await?.ok_or_else(|| ImageError::Invalid {
            reference: what.clone(),
            message: "the image's files disappeared from the store while it was pulled".into(),
        })
    }

    /// The image's layers: blob paths and, for a Linux image, diff_ids and unpacked dirs.
    fn layers(&self, manifest: &ImageManifest, config: &serde_json::Value, what: &str) -> Result<Vec<Layer>> {
        let linux = matches!(manifest::runtime_kind(manifest, config), RuntimeKind::Linux);
        let diff_ids: Vec<&str> = config
            .pointer("/rootfs/diff_ids")
            .and_then(|d| d.as_array())
            .map(|ids| ids.iter().map(|id| id.as_str().unwrap_or_default()).collect())
            .unwrap_or_default();
        if linux && diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::Invalid {
                reference: what.to_string(),
                message: format!(
                    "the image config lists {} rootfs.diff_ids for the manifest's {} layers",
                    diff_ids.len(),
                    manifest.layers.len()
                ),
            });
        }
        manifest
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let diff_id = if linux { diff_ids[i].to_string() } else { String::new() };
                Ok(Layer {
                    digest: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                    size: layer.size,
                    path: self.blob_path(&layer.digest, what)?,
                    dir: if linux { self.layer_dir(&diff_id, what)? } else { PathBuf::new() },
                    diff_id,
                })
            })
            .collect()
    }

    /// Unpacks `layer` unless it already is, on a blocking thread.
    async fn unpack(&self, layer: &Layer, what: &str) -> Result<()> {
        if tokio::fs::try_exists(&layer.dir).await.unwrap_or(false) {
            return Ok(());
        }
        let lock = self.unpacking.lock().expect("unpack locks").entry(layer.diff_id.clone()).or_default().clone();
        let _unpacking = lock.lock().await;
        if tokio::fs::try_exists(&layer.dir).await.unwrap_or(false) {
            return Ok(());
        }
        let (blob, media_type, diff_id, dir) =
            (layer.path.clone(), layer.media_type.clone(), layer.diff_id.clone(), layer.dir.clone());
        let temp = self.temp_path();
        let unpacked =
            tokio::task::spawn_blocking(move || unpack::unpack_layer(&blob, &media_type, &diff_id, &temp, &dir)).await;
        let message = match unpacked {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(message)) => message,
            Err(e) => format!("the unpacking thread failed: {e}"),
        };
        Err(ImageError::Invalid { reference: what.to_string(), message: format!("layer {}: {message}", layer.digest) })
    }

    async fn read_blob(&self, digest: &str, what: &str) -> Result<Option<Vec<u8>>> {
        let path = self.blob_path(digest, what)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ImageError::Io { path, source: e }),
        }
    }

    /// The image `digest` names, if the store holds all of it.
    async fn load(&self, reference: &Reference, digest: &str) -> Result<Option<PulledImage>> {
        let what = reference.to_string();
        let invalid = |message: String| ImageError::Invalid { reference: what.clone(), message };
        let Some(top) = self.read_blob(digest, &what).await? else { return Ok(None) };
        let (manifest_digest, manifest) = match manifest::parse(&top).map_err(invalid)? {
            Parsed::Image(manifest) => (digest.to_string(), manifest),
            Parsed::Index(index) => {
                let entry = manifest::choose(&index).map_err(invalid)?;
                let Some(child) = self.read_blob(&entry.digest, &what).await? else { return Ok(None) };
                match manifest::parse(&child).map_err(invalid)? {
                    Parsed::Image(manifest) => (entry.digest.clone(), manifest),
                    Parsed::Index(_) => return Err(invalid("an index inside an index is not supported".into())),
                }
            }
        };
        let Some(config) = self.read_blob(&manifest.config.digest, &what).await? else { return Ok(None) };
        let config = serde_json::from_slice(&config).unwrap_or(serde_json::Value::Null);
        let layers = self.layers(&manifest, &config, &what)?;
        for layer in &layers {
            if !tokio::fs::try_exists(&layer.path).await.unwrap_or(false) {
                return Ok(None);
            }
        }
        let runtime = match manifest::runtime_kind(&manifest, &config) {
            RuntimeKind::Wasm => {
                let (module, digest) = wasm_module(&manifest, &layers).await.map_err(invalid)?;
                Runtime::Wasm { module, digest }
            }
            RuntimeKind::Linux => {
                for layer in &layers {
                    self.unpack(layer, &what).await?;
                }
                Runtime::Linux { layers }
            }
        };
        Ok(Some(PulledImage {
            reference: reference.clone(),
            digest: digest.to_string(),
            manifest_digest,
            config,
            runtime,
        }))
    }
}

/// The references `refs/<registry>/<repository>/_tags/<tag>` files name.
fn tag_references(refs: &Path) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut pending = vec![refs.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if entry.file_name() != "_tags" {
                pending.push(path);
                continue;
            }
            let Some(name) = dir.strip_prefix(refs).ok().and_then(|n| n.to_str()) else { continue };
            let Some((registry, repository)) = name.split_once('/') else { continue };
            let Ok(tags) = std::fs::read_dir(&path) else { continue };
            for tag in tags.flatten() {
                let Some(tag) = tag.file_name().to_str().map(str::to_string) else { continue };
                found.push(Reference {
                    registry: registry.to_string(),
                    repository: repository.to_string(),
                    tag: Some(tag),
                    digest: None,
                });
            }
        }
    }
    found.sort_by_key(|r| r.to_string());
    found
}

/// The Wasm module of a Wasm image: its first layer of a Wasm media type, else a single layer
/// that starts with the Wasm magic number.
async fn wasm_module(manifest: &ImageManifest, layers: &[Layer]) -> std::result::Result<(PathBuf, String), String> {
    if let Some(layer) = layers.iter().find(|l| WASM_LAYER_TYPES.contains(&l.media_type.as_str())) {
        return Ok((layer.path.clone(), layer.digest.clone()));
    }
    if let [layer] = layers {
        let mut magic = [0u8; 4];
        let read = match tokio::fs::File::open(&layer.path).await {
            Ok(mut file) => file.read_exact(&mut magic).await.is_ok(),
            Err(_) => false,
        };
        if read && &magic == b"\0asm" {
            return Ok((layer.path.clone(), layer.digest.clone()));
        }
    }
    Err(format!(
        "a Wasm image needs a layer of type {} (or one layer holding the module); {} layer(s) packed otherwise \
         are not supported",
        WASM_LAYER_TYPES[0],
        manifest.layers.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The agent boxes pulls as `Send` futures.
    #[test]
    fn pulls_are_send() {
        fn send<T: Send>(_: &T) {}
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path(), ClientOptions::default()).unwrap();
        let reference = Reference::parse("app:v1", "h:1").unwrap();
        send(&store.pull(&reference, &Credentials::Anonymous, PullPolicy::Always));
        send(&store.client().push(&reference, &Credentials::Anonymous, &[], &[]));
        send(&store.client().inspect(&reference, &Credentials::Anonymous));
    }

    #[test]
    fn tags_are_found_under_refs() {
        let dir = tempfile::tempdir().unwrap();
        for tag in ["127.0.0.1:6443/ticker/_tags/v1", "docker.io/library/busybox/_tags/1.36"] {
            let path = dir.path().join(tag);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "sha256:00").unwrap();
        }
        let found: Vec<String> = tag_references(dir.path()).iter().map(|r| r.to_string()).collect();
        assert_eq!(found, ["127.0.0.1:6443/ticker:v1", "docker.io/library/busybox:1.36"]);
    }

    #[test]
    fn default_pull_policy_follows_kubelet() {
        let parse = |text: &str| Reference::parse(text, "h:1").unwrap();
        assert_eq!(PullPolicy::from_spec(None, &parse("app")), PullPolicy::Always);
        assert_eq!(PullPolicy::from_spec(None, &parse("app:latest")), PullPolicy::Always);
        assert_eq!(PullPolicy::from_spec(None, &parse("app:v1")), PullPolicy::IfNotPresent);
        let pinned = format!("app@sha256:{}", "a".repeat(64));
        assert_eq!(PullPolicy::from_spec(None, &parse(&pinned)), PullPolicy::IfNotPresent);
        assert_eq!(PullPolicy::from_spec(Some("Never"), &parse("app")), PullPolicy::Never);
        assert_eq!(PullPolicy::from_spec(Some("Always"), &parse("app:v1")), PullPolicy::Always);
    }
}
