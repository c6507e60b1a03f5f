//! OCI and Docker v2 manifests, and the two decisions made from them: which entry of an index
//! this node runs, and whether an image runs on wasmtime or as a Linux container.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Config type of the CNCF Wasm OCI artifact layout.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// Layer type of a Wasm module or component (CNCF Wasm OCI artifact layout).
pub const WASM_LAYER: &str = WASM_LAYER_TYPES[0];
pub use wharf_shim::image::{ImageKind as RuntimeKind, WASM_LAYER_TYPES};

/// The `Accept` header for manifest requests: every type this client reads.
pub(super) const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (OCI or Docker v2: the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A manifest as read from a registry or the store.
#[derive(Debug)]
pub(super) enum Parsed {
    Index(ImageIndex),
    Image(ImageManifest),
}

/// Reads manifest bytes; the `mediaType` field, else the shape, tells an index from an image.
pub(super) fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("manifest is not JSON: {e}"))?;
    if value.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
        return Err("only schemaVersion 2 manifests are supported (not Docker schema 1)".into());
    }
    let media_type = value.get("mediaType").and_then(|v| v.as_str()).unwrap_or_default();
    let index = match media_type {
        OCI_INDEX | DOCKER_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        "" => value.get("manifests").is_some(),
        other => return Err(format!("unsupported manifest media type {other}")),
    };
    if index {
        serde_json::from_value(value).map(Parsed::Index).map_err(|e| format!("bad image index: {e}"))
    } else {
        serde_json::from_value(value).map(Parsed::Image).map_err(|e| format!("bad image manifest: {e}"))
    }
}

/// Wasm when a layer has a Wasm media type or the config's architecture is `wasm`; Linux
/// otherwise (DESIGN.md, "Runtime selection"; the scheduler decides by the same rule).
pub fn runtime_kind(manifest: &ImageManifest, config: &serde_json::Value) -> RuntimeKind {
    let architecture = config.get("architecture").and_then(|a| a.as_str()).unwrap_or_default();
    wharf_shim::image::image_kind(manifest.layers.iter().map(|l| l.media_type.as_str()), architecture)
}

/// The OCI name of this machine's architecture.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The entry of an index this node runs: Linux on its architecture, else a Wasm entry.
pub fn select_platform(index: &ImageIndex) -> Option<&Descriptor> {
    select_platform_for(index, host_architecture())
}

/// [`select_platform`], or a message naming the platforms the index offers.
pub(super) fn choose(index: &ImageIndex) -> Result<&Descriptor, String> {
    let entry = select_platform(index).ok_or_else(|| {
        let offered: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|m| m.platform.as_ref())
            .map(|p| format!("{}/{}", p.os, p.architecture))
            .collect();
        format!(
            "the image index has no entry for linux/{} or wasm (it has: {})",
            host_architecture(),
            if offered.is_empty() { "none".to_string() } else { offered.join(", ") }
        )
    })?;
    if super::reference::valid_digest(&entry.digest) {
        Ok(entry)
    } else {
        Err(format!("unsupported digest {} in the image index (only sha256 is)", entry.digest))
    }
}

fn select_platform_for<'a>(index: &'a ImageIndex, architecture: &str) -> Option<&'a Descriptor> {
    let platforms =
        index.manifests.iter().map(|m| m.platform.as_ref().map(|p| (p.os.as_str(), p.architecture.as_str())));
    wharf_shim::image::select_platform(platforms, architecture).map(|i| &index.manifests[i])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn layer(media_type: &str) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: "sha256:0".into(),
            size: 1,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    fn manifest(layers: &[&str]) -> ImageManifest {
        ImageManifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.into()),
            config: layer("application/vnd.oci.image.config.v1+json"),
            layers: layers.iter().map(|t| layer(t)).collect(),
        }
    }

    #[test]
    fn wasm_layers_or_a_wasm_config_mean_wasmtime() {
        let linux_config = json!({"architecture": "amd64", "os": "linux"});
        for wasm in WASM_LAYER_TYPES {
            assert_eq!(runtime_kind(&manifest(&[wasm]), &linux_config), RuntimeKind::Wasm, "{wasm}");
        }
        let tar = "application/vnd.oci.image.layer.v1.tar+gzip";
        assert_eq!(runtime_kind(&manifest(&[tar, WASM_LAYER]), &json!({})), RuntimeKind::Wasm);
        assert_eq!(
            runtime_kind(&manifest(&[tar]), &json!({"architecture": "wasm", "os": "wasip1"})),
            RuntimeKind::Wasm
        );
    }

    #[test]
    fn anything_else_is_linux() {
        let config = json!({"architecture": "amd64", "os": "linux"});
        let docker = "application/vnd.docker.image.rootfs.diff.tar.gzip";
        assert_eq!(runtime_kind(&manifest(&[docker]), &config), RuntimeKind::Linux);
        assert_eq!(runtime_kind(&manifest(&[]), &serde_json::Value::Null), RuntimeKind::Linux);
        assert_eq!(
            runtime_kind(&manifest(&["application/wasm+zstd"]), &json!({"architecture": 5})),
            RuntimeKind::Linux
        );
    }

    #[test]
    fn index_entries_prefer_linux_on_this_architecture_then_wasm() {
        let entry = |os: &str, architecture: &str, digest: &str| Descriptor {
            platform: Some(Platform { architecture: architecture.into(), os: os.into(), variant: None }),
            digest: digest.into(),
            ..layer(OCI_MANIFEST)
        };
        let mut index = ImageIndex {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: vec![
                entry("unknown", "unknown", "attestation"),
                entry("wasip1", "wasm", "wasm"),
                entry("linux", "arm64", "arm"),
                entry("linux", "amd64", "amd"),
            ],
        };
        assert_eq!(select_platform_for(&index, "amd64").unwrap().digest, "amd");
        assert_eq!(select_platform_for(&index, "arm64").unwrap().digest, "arm");
        assert_eq!(select_platform_for(&index, "s390x").unwrap().digest, "wasm");
        index.manifests.remove(1);
        assert!(select_platform_for(&index, "s390x").is_none());
    }

    #[test]
    fn parse_tells_indexes_from_images() {
        let image = json!({"schemaVersion": 2, "config": {"digest": "sha256:1", "size": 2}, "layers": []});
        assert!(matches!(parse(image.to_string().as_bytes()), Ok(Parsed::Image(_))));
        let index = json!({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": []});
        assert!(matches!(parse(index.to_string().as_bytes()), Ok(Parsed::Index(_))));
        assert!(parse(br#"{"schemaVersion": 1}"#).unwrap_err().contains("schema 1"));
        assert!(parse(br#"{"schemaVersion": 2, "mediaType": "text/plain"}"#).unwrap_err().contains("text/plain"));
        assert!(parse(b"nope").is_err());
    }
}
