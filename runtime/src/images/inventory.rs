//! The images this node holds, as the kubelet reports them in `node.status.images`: every name
//! each image is known by and its bytes on disk, largest first, at most
//! [`MAX_NODE_IMAGES`] (kubelet's `nodeStatusMaxImages`).
//!
//! The inventory is kept in memory: filled once from the store at start ([`super::ImageStore::tagged`])
//! and updated by each pull, so a heartbeat never walks unpacked layers. Only the shim's
//! compiled-code cache is listed when the images are read (one directory read): a Wasm module
//! compiled after its pull counts with its image.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ContainerImage;

use super::{PulledImage, Reference, Runtime};

/// Most images listed in node.status.images (kubelet's `--node-status-max-images` default).
pub const MAX_NODE_IMAGES: usize = 50;

/// One image the node holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldImage {
    /// Every name it is known by: `registry/repo:tag`, `registry/repo@sha256:...`, and the
    /// references pods pulled it by.
    pub names: BTreeSet<String>,
    /// Bytes on disk: the Wasm module, or the unpacked layers.
    pub size: u64,
    /// Wasm images: the module's digest, which names its compiled code in the shim's cache.
    pub module_digest: Option<String>,
}

/// The node's images, by image manifest digest.
pub struct ImageInventory {
    /// The cluster's embedded registry: its images are also named as pods write them (`app:v1`).
    default_registry: String,
    images: Mutex<BTreeMap<String, HeldImage>>,
    /// Bytes of each unpacked layer directory, walked once (layers never change).
    layer_sizes: Mutex<HashMap<PathBuf, u64>>,
    /// The wasmtime shim's compiled-code cache (`<algorithm>-<hex>-<engine>.cwasm` files).
    compiled_cache: Mutex<Option<PathBuf>>,
    /// Bumped each time an image or a name is added.
    changed: tokio::sync::watch::Sender<u64>,
}

impl ImageInventory {
    pub fn new(default_registry: &str) -> Self {
        Self {
            default_registry: default_registry.to_string(),
            images: Mutex::default(),
            layer_sizes: Mutex::default(),
            compiled_cache: Mutex::default(),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Where the wasmtime shim keeps compiled code, so it counts with its images.
    pub fn set_compiled_cache(&self, dir: impl Into<PathBuf>) {
        *self.compiled_cache.lock().expect("inventory lock") = Some(dir.into());
    }

    /// Wakes when an image or a name is added.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Records `image`, pulled (or found present) by `used`, the reference as the pod wrote it.
    pub async fn record(&self, image: &PulledImage, used: Option<&str>) {
        let names = names(&image.reference, &image.digest, &self.default_registry, used);
        let key = image.manifest_digest.clone();
        let known = self.images.lock().expect("inventory lock").get(&key).cloned();
        let (size, module_digest) = match known {
            Some(held) => (held.size, held.module_digest),
            None => match &image.runtime {
                Runtime::Wasm { module, digest } => {
                    let size = tokio::fs::metadata(module).await.map(|m| m.len()).unwrap_or(0);
                    (size, Some(digest.clone()))
                }
                Runtime::Linux { layers } => {
                    let mut size = 0;
                    for layer in layers {
                        size += self.layer_size(&layer.dir).await;
                    }
                    (size, None)
                }
            },
        };
        let mut images = self.images.lock().expect("inventory lock");
        // A tag names one image: a pull that found it moved takes it from the old one.
        let tags: Vec<&String> = names.iter().filter(|n| !n.contains('@')).collect();
        let mut changed = false;
        for (other_key, other) in images.iter_mut() {
            if *other_key != key {
                let before = other.names.len();
                other.names.retain(|n| !tags.contains(&n));
                changed |= other.names.len() != before;
            }
        }
        let held = images.entry(key).or_insert_with(|| {
            changed = true;
            HeldImage { names: BTreeSet::new(), size, module_digest }
        });
        for name in names {
            changed |= held.names.insert(name);
        }
        drop(images);
        if changed {
            self.changed.send_modify(|v| *v += 1);
        }
    }

    async fn layer_size(&self, dir: &Path) -> u64 {
        if let Some(size) = self.layer_sizes.lock().expect("inventory lock").get(dir) {
            return *size;
        }
        let path = dir.to_path_buf();
        let size = tokio::task::spawn_blocking(move || dir_size(&path)).await.unwrap_or(0);
        self.layer_sizes.lock().expect("inventory lock").insert(dir.to_path_buf(), size);
        size
    }

    /// node.status.images now: compiled code read from the shim's cache, sorted, capped.
    pub fn list(&self) -> Vec<ContainerImage> {
        let cache = self.compiled_cache.lock().expect("inventory lock").clone();
        let compiled = cache.as_deref().map(compiled_sizes).unwrap_or_default();
        let images = self.images.lock().expect("inventory lock");
        node_images(images.values(), &compiled)
    }
}

/// `text` as node.status.images and the scheduler name it: `:latest` added when it has
/// neither tag nor digest.
pub fn normalize(text: &str) -> String {
    let last = text.rsplit('/').next().unwrap_or(text);
    if text.contains('@') || last.contains(':') { text.to_string() } else { format!("{text}:latest") }
}

/// Every name of the image `reference` resolved to `digest`: the full `registry/repo:tag` and
/// `registry/repo@digest`, the short forms pods write for the embedded registry, and `used`.
pub fn names(reference: &Reference, digest: &str, default_registry: &str, used: Option<&str>) -> BTreeSet<String> {
    let repository = format!("{}/{}", reference.registry, reference.repository);
    let mut names = BTreeSet::new();
    let short = reference.registry == default_registry;
    if reference.digest.is_none() {
        let tag = reference.tag.as_deref().unwrap_or("latest");
        names.insert(format!("{repository}:{tag}"));
        if short {
            names.insert(format!("{}:{tag}", reference.repository));
        }
    }
    names.insert(format!("{repository}@{digest}"));
    if short {
        names.insert(format!("{}@{digest}", reference.repository));
    }
    if let Some(used) = used.filter(|u| !u.is_empty()) {
        names.insert(normalize(used));
    }
    names
}

/// node.status.images for `images`, each Wasm one with its compiled code (`compiled`: module
/// digest → bytes): largest first (then by name), at most [`MAX_NODE_IMAGES`].
pub fn node_images<'a>(
    images: impl IntoIterator<Item = &'a HeldImage>,
    compiled: &HashMap<String, u64>,
) -> Vec<ContainerImage> {
    let mut listed: Vec<(u64, Vec<String>)> = images
        .into_iter()
        .filter(|image| !image.names.is_empty())
        .map(|image| {
            let extra = image.module_digest.as_ref().and_then(|d| compiled.get(d)).copied().unwrap_or(0);
            (image.size + extra, image.names.iter().cloned().collect())
        })
        .collect();
    listed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    listed.truncate(MAX_NODE_IMAGES);
    listed
        .into_iter()
        .map(|(size, names)| ContainerImage {
            names: Some(names),
            size_bytes: Some(i64::try_from(size).unwrap_or(i64::MAX)),
        })
        .collect()
}

/// Bytes of the compiled-code files in `dir`, by the module digest that names them
/// (`sha256-<hex>-<engine>.cwasm` → `sha256:<hex>`), summed over engines.
pub fn compiled_sizes(dir: &Path) -> HashMap<String, u64> {
    let mut sizes = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return sizes };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".cwasm")) else { continue };
        let Some((digest, _engine)) = stem.rsplit_once('-') else { continue };
        let Some((algorithm, hex)) = digest.split_once('-') else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        *sizes.entry(format!("{algorithm}:{hex}")).or_insert(0) += meta.len();
    }
    sizes
}

/// Bytes of the files under `dir` (symlinks not followed).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: &str = "127.0.0.1:6443";

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn an_image_is_named_as_pods_write_it_by_tag_and_by_digest() {
        let reference = Reference::parse("ticker:v1", REGISTRY).unwrap();
        let names = names(&reference, &digest('a'), REGISTRY, Some("ticker:v1"));
        let expected = [
            format!("127.0.0.1:6443/ticker@{}", digest('a')),
            "127.0.0.1:6443/ticker:v1".to_string(),
            format!("ticker@{}", digest('a')),
            "ticker:v1".to_string(),
        ];
        assert_eq!(names, expected.into_iter().collect());

        // Another registry: full names, plus the reference as the pod wrote it.
        let reference = Reference::parse("docker.io/busybox", REGISTRY).unwrap();
        let hub = super::names(&reference, &digest('b'), REGISTRY, Some("docker.io/busybox"));
        assert!(hub.contains("docker.io/library/busybox:latest"), "{hub:?}");
        assert!(hub.contains("docker.io/busybox:latest"), "{hub:?}");
        assert!(hub.contains(&format!("docker.io/library/busybox@{}", digest('b'))), "{hub:?}");
        assert!(!hub.contains("busybox:latest"), "{hub:?}");
    }

    #[test]
    fn images_are_listed_largest_first_with_compiled_code_and_capped() {
        let held = |name: &str, size: u64, module: Option<char>| HeldImage {
            names: [name.to_string()].into_iter().collect(),
            size,
            module_digest: module.map(digest),
        };
        let mut images = vec![held("small:v1", 10, Some('a')), held("big:v1", 500, None), held("mid:v1", 100, None)];
        // The small Wasm module's compiled code makes it the largest.
        let compiled = HashMap::from([(digest('a'), 1000)]);
        let listed = node_images(&images, &compiled);
        let summary: Vec<(&str, i64)> =
            listed.iter().map(|i| (i.names.as_ref().unwrap()[0].as_str(), i.size_bytes.unwrap())).collect();
        assert_eq!(summary, [("small:v1", 1010), ("big:v1", 500), ("mid:v1", 100)]);

        images.extend((0..60).map(|i| held(&format!("app{i:02}:v1"), 1000 + i, None)));
        let listed = node_images(&images, &HashMap::new());
        assert_eq!(listed.len(), MAX_NODE_IMAGES);
        assert_eq!(listed[0].names.as_ref().unwrap()[0], "app59:v1");
        assert_eq!(listed[0].size_bytes, Some(1059));
        let sizes: Vec<i64> = listed.iter().map(|i| i.size_bytes.unwrap()).collect();
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
        // The 50 largest: the 60 app images of 1000.. bytes, the 10 smallest of them left out.
        assert_eq!(*sizes.last().unwrap(), 1010);
    }

    #[test]
    fn compiled_code_is_found_by_module_digest() {
        let dir = tempfile::tempdir().unwrap();
        let hex = "a".repeat(64);
        std::fs::write(dir.path().join(format!("sha256-{hex}-0123abcd.cwasm")), [0u8; 300]).unwrap();
        std::fs::write(dir.path().join(format!("sha256-{hex}-4567ef01.cwasm")), [0u8; 20]).unwrap();
        std::fs::write(dir.path().join("unrelated.tmp"), [0u8; 5]).unwrap();
        let sizes = compiled_sizes(dir.path());
        assert_eq!(sizes, HashMap::from([(format!("sha256:{hex}"), 320)]));
    }

    #[tokio::test]
    async fn a_moved_tag_leaves_the_old_image_and_records_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("m.wasm");
        std::fs::write(&module, [0u8; 64]).unwrap();
        let inventory = ImageInventory::new(REGISTRY);
        let mut changes = inventory.subscribe();
        let pulled = |c: char| PulledImage {
            reference: Reference::parse("ticker:v1", REGISTRY).unwrap(),
            digest: digest(c),
            manifest_digest: digest(c),
            config: serde_json::Value::Null,
            runtime: Runtime::Wasm { module: module.clone(), digest: digest('f') },
        };
        inventory.record(&pulled('a'), Some("ticker:v1")).await;
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        inventory.record(&pulled('a'), Some("ticker:v1")).await;
        assert!(!changes.has_changed().unwrap(), "the same pull again changes nothing");
        let listed = inventory.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].size_bytes, Some(64));

        inventory.record(&pulled('b'), Some("ticker:v1")).await;
        let listed = inventory.list();
        assert_eq!(listed.len(), 2);
        let holding: Vec<bool> =
            listed.iter().map(|i| i.names.as_ref().unwrap().contains(&"ticker:v1".to_string())).collect();
        assert_eq!(holding.iter().filter(|h| **h).count(), 1, "{listed:?}");
    }
}
