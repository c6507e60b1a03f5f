//! RuntimeSupport: the node must offer every runtime the pod's containers need, by the label
//! `runtime.wharf.dev/<handler>=true` the agent sets per shim. The pod's RuntimeClass handler
//! decides for all its containers; without one each image decides (DESIGN.md, "Runtime
//! selection"): the embedded registry is asked for the image's manifest (through the API
//! server, which serves it with the same token) and the agent's rule ([`wharf_shim::image`])
//! applied: Wasm layers or a `wasm` config architecture mean `wasmtime`, anything else `youki`;
//! an index with both Linux and Wasm entries runs on either. An image the embedded registry
//! does not hold (another registry's) imposes no runtime. Answers are cached per image
//! reference; unknown ones for a shorter time.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use wharf_shim::image::{self, ImageKind};

use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::framework::{CycleState, FilterPlugin, Unfit};

pub const WASM_HANDLER: &str = "wasmtime";
pub const LINUX_HANDLER: &str = "youki";

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// How long an image's runtime is remembered; an unknown or missing image is asked again sooner.
const KNOWN_TTL: Duration = Duration::from_secs(300);
const UNKNOWN_TTL: Duration = Duration::from_secs(10);

/// The label by which a node offers `handler`.
pub fn runtime_label(handler: &str) -> String {
    format!("runtime.wharf.dev/{handler}")
}

pub fn not_offered(handler: &str) -> String {
    format!("node(s) didn't offer runtime {handler}")
}

/// The handlers this pod needs.
fn required(state: &CycleState) -> BTreeSet<&str> {
    match &state.runtime.runtime_class {
        Some(rc) => BTreeSet::from([rc.handler.as_str()]),
        None => state.runtime.image_runtimes.iter().map(String::as_str).collect(),
    }
}

/// The node labels the pod needs, with the reason a node without one is given.
struct RequiredLabels(Vec<(String, String)>);

pub struct RuntimeSupport;

impl FilterPlugin for RuntimeSupport {
    fn name(&self) -> &'static str {
        "RuntimeSupport"
    }

    fn pre_filter(&self, state: &mut CycleState, _cache: &Cache) -> Result<(), Unfit> {
        match &state.runtime.missing_runtime_class {
            Some(name) => Err(Unfit::new(format!("pod's RuntimeClass {name:?} not found"))),
            None => {
                let labels = required(state).into_iter().map(|h| (runtime_label(h), not_offered(h))).collect();
                state.write(RequiredLabels(labels));
                Ok(())
            }
        }
    }

    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Result<(), Unfit> {
        let Some(RequiredLabels(labels)) = state.read::<RequiredLabels>() else { return Ok(()) };
        for (label, reason) in labels {
            if node.labels.get(label).map(String::as_str) != Some("true") {
                return Err(Unfit::new(reason.clone()));
            }
        }
        Ok(())
    }
}

/// `(repository, tag or digest)` in the embedded registry for a reference without a registry
/// host (`ticker:v1`, `team/app@sha256:...`); `None` for images of other registries.
pub fn embedded_reference(image: &str) -> Option<(String, String)> {
    let (name, reference) = match image.split_once('@') {
        Some((name, digest)) => (name, digest.to_string()),
        None => match image.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, tag.to_string()),
            _ => (image, "latest".to_string()),
        },
    };
    let first = name.split('/').next().unwrap_or_default();
    if name.contains('/') && (first.contains(['.', ':']) || first == "localhost") {
        return None;
    }
    Some((name.to_string(), reference))
}

/// What an image needs of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRuntime {
    /// This handler.
    Needs(&'static str),
    /// Any runtime: an index with both Linux and Wasm entries.
    Either,
    /// Not known: the image is not in the embedded registry (or it could not be read).
    Unknown,
}

impl ImageRuntime {
    fn of_kind(kind: ImageKind) -> Self {
        ImageRuntime::Needs(match kind {
            ImageKind::Wasm => WASM_HANDLER,
            ImageKind::Linux => LINUX_HANDLER,
        })
    }
}

/// What a manifest says about the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRuntime {
    Decided(ImageRuntime),
    /// The config blob (this digest) must be read: its architecture decides.
    NeedsConfig(String),
}

fn platforms(index: &[Value]) -> impl Iterator<Item = Option<(&str, &str)>> + Clone {
    index.iter().map(|e| Some((e["platform"]["os"].as_str()?, e["platform"]["architecture"].as_str()?)))
}

fn layer_types(manifest: &Value) -> impl Iterator<Item = &str> {
    manifest["layers"].as_array().into_iter().flatten().filter_map(|l| l["mediaType"].as_str())
}

/// The agent's rule ([`wharf_shim::image`]) applied to a manifest or index.
pub fn manifest_runtime(manifest: &Value) -> ManifestRuntime {
    if let Some(entries) = manifest.get("manifests").and_then(Value::as_array) {
        return ManifestRuntime::Decided(match image::index_kind(platforms(entries)) {
            Some(kind) => ImageRuntime::of_kind(kind),
            // Both Linux and Wasm entries, or neither.
            None if platforms(entries).flatten().any(|(_, arch)| image::is_wasm_platform(arch)) => ImageRuntime::Either,
            None => ImageRuntime::Unknown,
        });
    }
    if image::layers_decide(layer_types(manifest)) {
        return ManifestRuntime::Decided(ImageRuntime::Needs(WASM_HANDLER));
    }
    match manifest["config"]["digest"].as_str() {
        Some(digest) => ManifestRuntime::NeedsConfig(digest.to_string()),
        None => ManifestRuntime::Decided(ImageRuntime::Needs(LINUX_HANDLER)),
    }
}

/// The runtime of an image manifest whose `config` blob was read.
pub fn config_runtime(manifest: &Value, config: &Value) -> ImageRuntime {
    ImageRuntime::of_kind(image::image_kind(layer_types(manifest), config["architecture"].as_str().unwrap_or_default()))
}

/// How many images are remembered before answers past their time are dropped.
const PRUNE_ABOVE: usize = 1024;

/// Which runtime each image calls for, asked of the embedded registry and remembered.
pub struct ImageRuntimes {
    client: kube::Client,
    known: Mutex<HashMap<String, (ImageRuntime, Instant)>>,
}

fn ttl(answer: ImageRuntime) -> Duration {
    if answer == ImageRuntime::Unknown { UNKNOWN_TTL } else { KNOWN_TTL }
}

impl ImageRuntimes {
    pub fn new(client: kube::Client) -> Self {
        ImageRuntimes { client, known: Mutex::default() }
    }

    /// The handlers the pod's images call for.
    pub async fn for_pod(&self, pod: &Pod) -> BTreeSet<String> {
        let Some(spec) = pod.spec.as_ref() else { return BTreeSet::new() };
        let images =
            spec.containers.iter().chain(spec.init_containers.iter().flatten()).filter_map(|c| c.image.as_deref());
        let mut handlers = BTreeSet::new();
        for image in images {
            if let ImageRuntime::Needs(handler) = self.of_image(image).await {
                handlers.insert(handler.to_string());
            }
        }
        handlers
    }

    fn remembered(&self, image: &str, now: Instant) -> Option<ImageRuntime> {
        let known = self.known.lock().ok()?;
        let (answer, at) = known.get(image).copied()?;
        (now.duration_since(at) < ttl(answer)).then_some(answer)
    }

    pub async fn of_image(&self, image: &str) -> ImageRuntime {
        let now = Instant::now();
        if let Some(answer) = self.remembered(image, now) {
            return answer;
        }
        let answer = match embedded_reference(image) {
            Some((repository, reference)) => self.ask(&repository, &reference).await,
            None => ImageRuntime::Unknown,
        };
        if let Ok(mut known) = self.known.lock() {
            if known.len() >= PRUNE_ABOVE {
                known.retain(|_, (answer, at)| now.duration_since(*at) < ttl(*answer));
            }
            known.insert(image.to_string(), (answer, now));
        }
        answer
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let request =
            http::Request::get(path).header(http::header::ACCEPT, ACCEPT).body(kube::client::Body::empty()).ok()?;
        let response = match self.client.send(request).await {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(error = %e, path, "cannot ask the embedded registry");
                return None;
            }
        };
        if !response.status().is_success() {
            return None;
        }
        let body = response.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice(&body).ok()
    }

    async fn ask(&self, repository: &str, reference: &str) -> ImageRuntime {
        let Some(manifest) = self.get(&format!("/v2/{repository}/manifests/{reference}")).await else {
            return ImageRuntime::Unknown;
        };
        match manifest_runtime(&manifest) {
            ManifestRuntime::Decided(answer) => answer,
            ManifestRuntime::NeedsConfig(digest) => match self.get(&format!("/v2/{repository}/blobs/{digest}")).await {
                Some(config) => config_runtime(&manifest, &config),
                None => ImageRuntime::Unknown,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::framework::RuntimeRequirements;
    use serde_json::json;
    use std::sync::Arc;

    fn offering(name: &str, handlers: &[&str]) -> NodeInfo {
        let labels: serde_json::Map<String, Value> =
            handlers.iter().map(|h| (runtime_label(h), json!("true"))).collect();
        NodeInfo::from_node(node(name, json!({"metadata": {"labels": labels}})))
    }

    #[test]
    fn images_decide_without_a_runtime_class() {
        let runtime = RuntimeRequirements {
            image_runtimes: BTreeSet::from([WASM_HANDLER.to_string(), LINUX_HANDLER.to_string()]),
            ..Default::default()
        };
        let mut state = CycleState::new(pod("p", json!({})), runtime);
        RuntimeSupport.pre_filter(&mut state, &Cache::default()).unwrap();
        assert!(RuntimeSupport.filter(&state, &offering("a", &[WASM_HANDLER, LINUX_HANDLER])).is_ok());
        assert_eq!(
            RuntimeSupport.filter(&state, &offering("b", &[WASM_HANDLER])),
            Err(Unfit::new(not_offered("youki")))
        );
        let mut anything = CycleState::new(pod("p", json!({})), RuntimeRequirements::default());
        RuntimeSupport.pre_filter(&mut anything, &Cache::default()).unwrap();
        assert!(RuntimeSupport.filter(&anything, &offering("c", &[])).is_ok());
    }

    #[test]
    fn the_runtime_class_handler_wins() {
        let rc = serde_json::from_value(json!({"metadata": {"name": "wasm"}, "handler": "wasmtime"})).unwrap();
        let runtime = RuntimeRequirements {
            runtime_class: Some(Arc::new(rc)),
            image_runtimes: BTreeSet::from([LINUX_HANDLER.to_string()]),
            ..Default::default()
        };
        let mut state = CycleState::new(pod("p", json!({})), runtime);
        RuntimeSupport.pre_filter(&mut state, &Cache::default()).unwrap();
        assert!(RuntimeSupport.filter(&state, &offering("a", &[WASM_HANDLER])).is_ok());
        assert_eq!(
            RuntimeSupport.filter(&state, &offering("b", &[LINUX_HANDLER])),
            Err(Unfit::new("node(s) didn't offer runtime wasmtime"))
        );
        let missing = RuntimeRequirements { missing_runtime_class: Some("gone".into()), ..Default::default() };
        let mut state = CycleState::new(pod("p", json!({})), missing);
        assert!(RuntimeSupport.pre_filter(&mut state, &Cache::default()).is_err());
    }

    #[test]
    fn references_of_the_embedded_registry() {
        assert_eq!(embedded_reference("ticker:v1"), Some(("ticker".into(), "v1".into())));
        assert_eq!(embedded_reference("team/app"), Some(("team/app".into(), "latest".into())));
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(embedded_reference(&format!("app@{digest}")), Some(("app".into(), digest)));
        assert_eq!(embedded_reference("docker.io/library/busybox:1"), None);
        assert_eq!(embedded_reference("localhost:5000/x:1"), None);
    }

    #[test]
    fn manifests_tell_wasm_from_linux_by_the_agents_rule() {
        let needs = |h| ManifestRuntime::Decided(ImageRuntime::Needs(h));
        let wasm = json!({"config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:c"},
            "layers": [{"mediaType": "application/wasm"}]});
        assert_eq!(manifest_runtime(&wasm), needs(WASM_HANDLER));
        let artifact = json!({"config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": "sha256:c"},
            "layers": [{"mediaType": "application/vnd.wasm.content.layer.v1+wasm"}]});
        assert_eq!(manifest_runtime(&artifact), needs(WASM_HANDLER));
        let linux = json!({"config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:c"},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}]});
        assert_eq!(manifest_runtime(&linux), ManifestRuntime::NeedsConfig("sha256:c".into()));
        assert_eq!(config_runtime(&linux, &json!({"architecture": "wasm"})), ImageRuntime::Needs(WASM_HANDLER));
        assert_eq!(config_runtime(&linux, &json!({"architecture": "amd64"})), ImageRuntime::Needs(LINUX_HANDLER));
        let both = json!({"manifests": [{"platform": {"architecture": "amd64", "os": "linux"}},
            {"platform": {"architecture": "wasm", "os": "wasip1"}}]});
        assert_eq!(manifest_runtime(&both), ManifestRuntime::Decided(ImageRuntime::Either));
        let linux_only = json!({"manifests": [{"platform": {"architecture": "amd64", "os": "linux"}},
            {"platform": {"architecture": "unknown", "os": "unknown"}}]});
        assert_eq!(manifest_runtime(&linux_only), needs(LINUX_HANDLER));
        let wasm_and_attestation = json!({"manifests": [{"platform": {"architecture": "wasm", "os": "wasip2"}},
            {"platform": {"architecture": "unknown", "os": "unknown"}}]});
        assert_eq!(manifest_runtime(&wasm_and_attestation), needs(WASM_HANDLER));
    }
}
