//! `wharf image`: loads a `.wasm` file, an OCI image layout (directory or tar) or a `docker
//! save` archive into the cluster's embedded registry, and lists what that registry holds.
//!
//! A `.wasm` file becomes a Wasm OCI artifact (the CNCF layout): a config of media type
//! `application/vnd.wasm.config.v0+json` with architecture `wasm` and os `wasip1` (a module) or
//! `wasip2` (a component), and the file as its one `application/wasm` layer. Nothing in it
//! depends on time or file name, so the same file always gets the same digest. A layout or tar
//! is pushed as it is, every blob: its one image, or the entry whose
//! `org.opencontainers.image.ref.name` is the tag, or else its whole index.
//!
//! A `docker save` archive (directory or tar) is recognised by its `manifest.json`, which both
//! the legacy layout (`<id>.json` configs, `<id>/layer.tar`) and Docker 25+ saves (OCI layouts
//! too, whose index may name platforms the archive lacks) carry. Its image (the only one, or
//! the one whose `RepoTags` has the tag) becomes an OCI manifest over the same config and layer
//! files, each layer typed by its content (a plain tar, gzip or zstd); plain layers are checked
//! against the config's `rootfs.diff_ids`.
//!
//! The cluster is found as kubectl finds it: `--kubeconfig`, then `$KUBECONFIG` (the first
//! file of the list that exists), then the default data dir's `kubeconfig.yaml`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use clap::Subcommand;
use serde_json::json;
use sha2::{Digest, Sha256};
use wharf_runtime::images::{
    self, BlobSource, ClientOptions, Credentials, Descriptor, ImageIndex, ImageManifest, PushBlob, PushManifest,
    Reference, RegistryClient,
};

#[derive(clap::Args)]
pub struct ImageArgs {
    /// The cluster's kubeconfig (default: $KUBECONFIG, then the data dir's kubeconfig.yaml).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Load a .wasm file, an OCI image layout (directory or tar) or a `docker save` archive into
    /// the registry.
    ///
    /// Prints each blob pushed to stderr and the reference pods use (NAME:TAG) as its last line.
    Import {
        /// FILE.wasm, OCI-LAYOUT-DIR, OCI-TAR or DOCKER-SAVE-TAR.
        path: PathBuf,
        /// Repository and tag in the registry, e.g. hello:v1.
        #[arg(long)]
        name: String,
    },
    /// List the registry's repositories and tags.
    Ls,
}

pub async fn run(args: ImageArgs) -> anyhow::Result<()> {
    let cluster = Cluster::load(&kubeconfig_path(args.kubeconfig))?;
    match args.command {
        ImageCommand::Import { path, name } => import(&cluster, &path, &name).await,
        ImageCommand::Ls => list(&cluster).await,
    }
}

/// `--kubeconfig`, else the first existing file of `$KUBECONFIG`, else the data dir's.
pub(crate) fn kubeconfig_path(flag: Option<PathBuf>) -> PathBuf {
    if let Some(path) = flag {
        return path;
    }
    let listed: Vec<PathBuf> = std::env::var_os("KUBECONFIG")
        .map(|list| std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default();
    if let Some(path) = listed.iter().find(|p| p.exists()).or(listed.first()) {
        return path.clone();
    }
    crate::default_data_dir().join("kubeconfig.yaml")
}

/// How to reach the cluster's registry, read from a kubeconfig.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// `host:port` of the API server, which serves the registry at `/v2/`.
    registry: String,
    plain_http: bool,
    ca_pem: Option<String>,
    token: Option<String>,
}

impl Cluster {
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("{shown}: cannot read the kubeconfig (is the server running? see --kubeconfig)")
        })?;
        let config: serde_yaml::Value =
            serde_yaml::from_str(&text).with_context(|| format!("{shown}: not a kubeconfig"))?;
        let named = |list: &str, name: &str, key: &str| {
            config[list]
                .as_sequence()
                .and_then(|items| items.iter().find(|item| item["name"].as_str() == Some(name)))
                .map(|item| item[key].clone())
        };
        let context_name = match config["current-context"].as_str() {
            Some(name) => name.to_string(),
            None => match config["contexts"].as_sequence().map(Vec::as_slice) {
                Some([only]) => only["name"].as_str().unwrap_or_default().to_string(),
                _ => bail!("{shown}: no current-context"),
            },
        };
        let context = named("contexts", &context_name, "context")
            .with_context(|| format!("{shown}: no context {context_name}"))?;
        let cluster_name = context["cluster"].as_str().unwrap_or_default();
        let cluster = named("clusters", cluster_name, "cluster")
            .with_context(|| format!("{shown}: no cluster {cluster_name:?}"))?;
        let user = context["user"].as_str().and_then(|name| named("users", name, "user")).unwrap_or_default();

        let server = cluster["server"].as_str().with_context(|| format!("{shown}: the cluster has no server"))?;
        // Every server of the control plane serves the registry: the first one listening.
        let servers = serde_yaml::from_value(config.clone())
            .map(|k| wharf_runtime::api_client::kubeconfig_servers(&k))
            .unwrap_or_default();
        let server = first_listening(&servers).unwrap_or(server);
        let (plain_http, rest) = match (server.strip_prefix("https://"), server.strip_prefix("http://")) {
            (Some(rest), _) => (false, rest),
            (None, Some(rest)) => (true, rest),
            _ => bail!("{shown}: server {server} is not an http(s) URL"),
        };
        let registry = rest.split('/').next().unwrap_or_default().to_string();
        let relative = |file: &str| path.parent().unwrap_or(Path::new(".")).join(file);
        let ca_pem = if let Some(data) = cluster["certificate-authority-data"].as_str() {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .with_context(|| format!("{shown}: certificate-authority-data is not base64"))?;
            Some(String::from_utf8(pem).with_context(|| format!("{shown}: certificate-authority-data is not PEM"))?)
        } else if let Some(file) = cluster["certificate-authority"].as_str() {
            let file = relative(file);
            Some(std::fs::read_to_string(&file).with_context(|| format!("{}: cannot read the CA", file.display()))?)
        } else {
            None
        };
        let token = if let Some(token) = user["token"].as_str() {
            Some(token.to_string())
        } else if let Some(file) = user["tokenFile"].as_str() {
            let file = relative(file);
            let token = std::fs::read_to_string(&file).with_context(|| format!("{}: cannot read", file.display()))?;
            Some(token.trim().to_string())
        } else {
            None
        };
        Ok(Self { registry, plain_http, ca_pem, token })
    }

    fn client(&self) -> anyhow::Result<RegistryClient> {
        let insecure_registries = if self.plain_http { vec![self.registry.clone()] } else { Vec::new() };
        Ok(RegistryClient::new(ClientOptions { ca_pem: self.ca_pem.clone(), insecure_registries })?)
    }

    fn credentials(&self) -> Credentials {
        self.token.clone().map(Credentials::Bearer).unwrap_or_default()
    }
}

/// How long `wharf image` waits for one server's TCP connection when the kubeconfig lists others.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The first of several `servers` (URLs) that accepts a TCP connection; none when there is only
/// one to choose from.
fn first_listening(servers: &[String]) -> Option<&str> {
    if servers.len() < 2 {
        return None;
    }
    servers.iter().map(String::as_str).find(|server| {
        let Ok(uri) = server.parse::<http::Uri>() else { return false };
        let Some(host) = uri.host() else { return false };
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
        let host = host.trim_start_matches('[').trim_end_matches(']');
        std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map(|mut addrs| addrs.any(|addr| std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok()))
            .unwrap_or(false)
    })
}

/// Blobs and manifests ready to push; manifests in order, the tagged one last.
#[derive(Default)]
struct LocalImage {
    blobs: Vec<PushBlob>,
    manifests: Vec<PushManifest>,
    /// Where a tar was unpacked; removed when the push is done.
    _unpacked: Option<tempfile::TempDir>,
}

impl LocalImage {
    fn add_blob(&mut self, blob: PushBlob) {
        if !self.blobs.iter().any(|b| b.digest == blob.digest) {
            self.blobs.push(blob);
        }
    }

    fn bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn bytes_blob(bytes: Vec<u8>) -> PushBlob {
    PushBlob { digest: sha256_hex(&bytes), size: bytes.len() as u64, source: BlobSource::Bytes(bytes.into()) }
}

/// Reads what `path` holds: a Wasm binary, an OCI image layout or a `docker save` archive
/// (each a directory or a tar).
fn load(path: &Path, tag: &str) -> anyhow::Result<LocalImage> {
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("{shown}: cannot read"))?;
    if meta.is_dir() {
        return read_directory(path, path, tag);
    }
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(path)
        .and_then(|file| file.take(512).read_to_end(&mut head))
        .with_context(|| format!("{shown}: cannot read"))?;
    if head.starts_with(b"\0asm") {
        return wasm_artifact(path, &head);
    }
    if head.get(257..262) == Some(b"ustar") {
        let unpacked = tempfile::tempdir().context("cannot create a temporary directory")?;
        let file = std::fs::File::open(path).with_context(|| format!("{shown}: cannot read"))?;
        tar::Archive::new(file).unpack(unpacked.path()).with_context(|| format!("{shown}: cannot unpack the tar"))?;
        let mut image = read_directory(unpacked.path(), path, tag)?;
        image._unpacked = Some(unpacked);
        return Ok(image);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        bail!("{shown}: a compressed tar; decompress it first (gunzip)");
    }
    if path.extension().is_some_and(|e| e == "wasm") {
        bail!("{shown}: not a WebAssembly file");
    }
    bail!("{shown}: not a WebAssembly file, an OCI image layout (directory or tar) or a docker save tar")
}

/// A `docker save` archive if `dir` has a `manifest.json`, else an OCI image layout.
fn read_directory(dir: &Path, shown: &Path, tag: &str) -> anyhow::Result<LocalImage> {
    if dir.join(SAVE_MANIFEST).is_file() { read_docker_save(dir, shown, tag) } else { read_layout(dir, shown, tag) }
}

const SAVE_MANIFEST: &str = "manifest.json";

/// One image of a `docker save` archive's `manifest.json`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SavedImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The image of a `docker save` archive in `dir`, as an OCI manifest over its files.
fn read_docker_save(dir: &Path, shown: &Path, tag: &str) -> anyhow::Result<LocalImage> {
    let shown = shown.display();
    let bytes = std::fs::read(dir.join(SAVE_MANIFEST)).with_context(|| format!("{shown}: {SAVE_MANIFEST}"))?;
    let saved: Vec<SavedImage> = serde_json::from_slice(&bytes)
        .with_context(|| format!("{shown}: {SAVE_MANIFEST} is not a docker save manifest"))?;
    let tagged = |image: &&SavedImage| {
        image.repo_tags.iter().flatten().any(|name| name == tag || name.rsplit_once(':').is_some_and(|(_, t)| t == tag))
    };
    let image = match (saved.as_slice(), saved.iter().find(tagged)) {
        ([], _) => bail!("{shown}: {SAVE_MANIFEST} lists no image"),
        ([only], _) | (_, Some(only)) => only,
        (all, None) => {
            let names: Vec<&str> = all.iter().flat_map(|i| i.repo_tags.iter().flatten()).map(String::as_str).collect();
            bail!("{shown}: holds {} images and none is tagged {tag:?} (it has: {})", all.len(), names.join(", "))
        }
    };
    let root = dir.canonicalize().with_context(|| format!("{shown}: cannot read"))?;
    // Entries are resolved inside the archive, symlinks included (legacy saves link shared layers).
    let entry = |name: &str| -> anyhow::Result<PathBuf> {
        let path =
            root.join(name).canonicalize().with_context(|| format!("{shown}: {name}: missing from the archive"))?;
        if !path.starts_with(&root) || !path.is_file() {
            bail!("{shown}: {name}: not a file inside the archive");
        }
        Ok(path)
    };
    let config_bytes = std::fs::read(entry(&image.config)?).with_context(|| format!("{shown}: {}", image.config))?;
    let config_json: serde_json::Value = serde_json::from_slice(&config_bytes)
        .with_context(|| format!("{shown}: {}: the image config is not JSON", image.config))?;
    let diff_ids = config_json.pointer("/rootfs/diff_ids").and_then(|d| d.as_array()).cloned().unwrap_or_default();
    if diff_ids.len() != image.layers.len() {
        bail!(
            "{shown}: {}: the config lists {} rootfs.diff_ids for {} layers",
            image.config,
            diff_ids.len(),
            image.layers.len()
        );
    }
    let config = bytes_blob(config_bytes);
    let mut local = LocalImage::default();
    let mut descriptors = Vec::new();
    for (name, diff_id) in image.layers.iter().zip(&diff_ids) {
        let path = entry(name)?;
        let (digest, size, media_type) = describe_layer(&path).with_context(|| format!("{shown}: {name}"))?;
        if media_type == images::OCI_LAYER && diff_id.as_str() != Some(digest.as_str()) {
            bail!("{shown}: {name}: its digest is {digest}, the config's rootfs.diff_ids says {diff_id}");
        }
        descriptors.push(json!({"mediaType": media_type, "digest": digest, "size": size}));
        local.add_blob(PushBlob { digest, size, source: BlobSource::File(path) });
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": images::OCI_MANIFEST,
        "config": {"mediaType": images::OCI_CONFIG, "digest": config.digest, "size": config.size},
        "layers": descriptors,
    });
    local.add_blob(config);
    local.manifests.push(PushManifest {
        media_type: images::OCI_MANIFEST.into(),
        bytes: serde_json::to_vec(&manifest).expect("JSON serializes").into(),
    });
    Ok(local)
}

/// A layer file's digest, size, and media type from its first bytes.
fn describe_layer(path: &Path) -> anyhow::Result<(String, u64, &'static str)> {
    let mut file = std::fs::File::open(path)?;
    let mut head = [0u8; 4];
    let read = file.read(&mut head)?;
    let media_type = match &head[..read] {
        [0x1f, 0x8b, ..] => images::OCI_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => images::OCI_LAYER_ZSTD,
        _ => images::OCI_LAYER,
    };
    let mut hasher = Sha256::new();
    hasher.update(&head[..read]);
    let size = read as u64 + std::io::copy(&mut file, &mut hasher)?;
    Ok((format!("sha256:{:x}", hasher.finalize()), size, media_type))
}

/// A Wasm module or component as a Wasm OCI artifact.
fn wasm_artifact(path: &Path, head: &[u8]) -> anyhow::Result<LocalImage> {
    let shown = path.display();
    // Modules are version 1; components carry version 0x0d and layer 1.
    let component = head.get(4..8) == Some(&[0x0d, 0x00, 0x01, 0x00]);
    let mut file = std::fs::File::open(path).with_context(|| format!("{shown}: cannot read"))?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher).with_context(|| format!("{shown}: cannot read"))?;
    let layer = PushBlob {
        digest: format!("sha256:{:x}", hasher.finalize()),
        size,
        source: BlobSource::File(path.to_path_buf()),
    };
    let os = if component { "wasip2" } else { "wasip1" };
    let config = bytes_blob(
        serde_json::to_vec(&json!({"architecture": "wasm", "os": os, "layerDigests": [layer.digest]}))
            .expect("JSON serializes"),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": images::OCI_MANIFEST,
        "config": {"mediaType": images::WASM_CONFIG, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": images::WASM_LAYER, "digest": layer.digest, "size": layer.size}],
    });
    let manifest = PushManifest {
        media_type: images::OCI_MANIFEST.into(),
        bytes: serde_json::to_vec(&manifest).expect("JSON serializes").into(),
    };
    Ok(LocalImage { blobs: vec![config, layer], manifests: vec![manifest], _unpacked: None })
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout in `dir` (`shown` names it in messages).
fn read_layout(dir: &Path, shown: &Path, tag: &str) -> anyhow::Result<LocalImage> {
    let index_path = dir.join("index.json");
    let bytes = std::fs::read(&index_path)
        .with_context(|| format!("{}: not an OCI image layout (no index.json)", shown.display()))?;
    let index: ImageIndex = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: index.json is not an OCI image index", shown.display()))?;
    let mut image = LocalImage::default();
    let named = index.manifests.iter().find(|d| {
        d.annotations
            .get(REF_NAME)
            .is_some_and(|name| name == tag || name.rsplit_once(':').is_some_and(|(_, t)| t == tag))
    });
    match (index.manifests.as_slice(), named) {
        ([], _) => bail!("{}: index.json lists no image", shown.display()),
        ([only], _) | (_, Some(only)) => add_manifest(dir, shown, only, &mut image)?,
        (all, None) => {
            for entry in all {
                add_manifest(dir, shown, entry, &mut image)?;
            }
            image.manifests.push(PushManifest { media_type: images::OCI_INDEX.into(), bytes: bytes.into() });
        }
    }
    Ok(image)
}

/// Where a layout keeps the blob `digest`, checked against the descriptor's size.
fn layout_blob(dir: &Path, shown: &Path, descriptor: &Descriptor) -> anyhow::Result<PathBuf> {
    let (algorithm, hex) = descriptor
        .digest
        .split_once(':')
        .filter(|(a, h)| !a.is_empty() && !h.is_empty() && !h.contains(['/', '.']) && !a.contains(['/', '.']))
        .with_context(|| format!("{}: invalid digest {:?}", shown.display(), descriptor.digest))?;
    let path = dir.join("blobs").join(algorithm).join(hex);
    let meta = std::fs::metadata(&path)
        .with_context(|| format!("{}: blob {} is missing", shown.display(), descriptor.digest))?;
    if meta.len() != descriptor.size {
        bail!(
            "{}: blob {} has {} bytes, its descriptor says {}",
            shown.display(),
            descriptor.digest,
            meta.len(),
            descriptor.size
        );
    }
    Ok(path)
}

/// Adds a manifest (after everything it references, so children are pushed first).
fn add_manifest(dir: &Path, shown: &Path, descriptor: &Descriptor, image: &mut LocalImage) -> anyhow::Result<()> {
    let what = || format!("{}: manifest {}", shown.display(), descriptor.digest);
    let bytes = std::fs::read(layout_blob(dir, shown, descriptor)?).with_context(what)?;
    if sha256_hex(&bytes) != descriptor.digest {
        bail!("{}: its content does not match its digest", what());
    }
    if image.manifests.iter().any(|m| sha256_hex(&m.bytes) == descriptor.digest) {
        return Ok(());
    }
    match descriptor.media_type.as_str() {
        images::OCI_INDEX | images::DOCKER_LIST => {
            let index: ImageIndex = serde_json::from_slice(&bytes).with_context(what)?;
            for child in &index.manifests {
                add_manifest(dir, shown, child, image)?;
            }
        }
        images::OCI_MANIFEST | images::DOCKER_MANIFEST => {
            let manifest: ImageManifest = serde_json::from_slice(&bytes).with_context(what)?;
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                let path = layout_blob(dir, shown, blob)?;
                image.add_blob(PushBlob {
                    digest: blob.digest.clone(),
                    size: blob.size,
                    source: BlobSource::File(path),
                });
            }
        }
        other => bail!("{}: unsupported media type {other:?}", what()),
    }
    image.manifests.push(PushManifest { media_type: descriptor.media_type.clone(), bytes: bytes.into() });
    Ok(())
}

pub(crate) async fn import(cluster: &Cluster, path: &Path, name: &str) -> anyhow::Result<()> {
    let target = Reference::parse(name, &cluster.registry).with_context(|| format!("--name {name}"))?;
    if target.registry != cluster.registry {
        bail!("--name {name}: names registry {}, not the cluster's ({})", target.registry, cluster.registry);
    }
    if target.digest.is_some() {
        bail!("--name {name}: give NAME:TAG, not a digest");
    }
    let tag = target.tag.clone().unwrap_or_else(|| "latest".into());
    let image = load(path, &tag)?;
    let client = cluster.client()?;
    let pushed = |blob: &PushBlob, uploaded: bool| {
        let done = if uploaded { "pushed" } else { "already present" };
        eprintln!("{}  {:>10}  {done}", blob.digest, human_size(blob.size));
    };
    let digest = client
        .push_with_progress(&target, &cluster.credentials(), &image.blobs, &image.manifests, &pushed)
        .await
        .with_context(|| format!("{}: cannot push", path.display()))?;
    println!("pushed {} blob(s), {}, manifest {digest}", image.blobs.len(), human_size(image.bytes()));
    println!("{}:{tag}", target.repository);
    Ok(())
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

async fn list(cluster: &Cluster) -> anyhow::Result<()> {
    let client = cluster.client()?;
    let credentials = cluster.credentials();
    let mut rows = vec![["REPOSITORY", "TAG", "RUNTIME", "SIZE", "DIGEST"].map(String::from)];
    for repository in client.repositories(&cluster.registry, &credentials).await? {
        for tag in client.tags(&cluster.registry, &repository, &credentials).await? {
            let reference = Reference {
                registry: cluster.registry.clone(),
                repository: repository.clone(),
                tag: Some(tag.clone()),
                digest: None,
            };
            let (runtime, size, digest) = match client.inspect(&reference, &credentials).await {
                Ok(summary) => (summary.runtime.as_str().to_string(), human_size(summary.size), summary.digest),
                Err(e) => {
                    eprintln!("warning: {repository}:{tag}: {e}");
                    ("unknown".into(), "-".into(), "-".into())
                }
            };
            rows.push([repository.clone(), tag, runtime, size, digest]);
        }
    }
    if rows.len() == 1 {
        eprintln!("No images in the registry at {}.", cluster.registry);
        return Ok(());
    }
    print!("{}", table(&rows));
    Ok(())
}

/// Left-aligned columns separated by three spaces, as kubectl prints them.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, width)| format!("{cell:width$}")).collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_files_become_reproducible_wasm_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("hello.wasm");
        std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
        let image = load(&module, "v1").unwrap();
        assert_eq!(image.blobs.len(), 2);
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifests[0].bytes).unwrap();
        assert_eq!(manifest["config"]["mediaType"], images::WASM_CONFIG);
        assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
        assert_eq!(manifest["layers"][0]["size"], 8);
        let BlobSource::Bytes(config) = &image.blobs[0].source else { panic!("config in memory") };
        let config: serde_json::Value = serde_json::from_slice(config).unwrap();
        assert_eq!((config["architecture"].as_str(), config["os"].as_str()), (Some("wasm"), Some("wasip1")));
        let parsed: ImageManifest = serde_json::from_slice(&image.manifests[0].bytes).unwrap();
        assert_eq!(images::runtime_kind(&parsed, &config), images::RuntimeKind::Wasm);

        let copy = dir.path().join("other-name.wasm");
        std::fs::copy(&module, &copy).unwrap();
        assert_eq!(load(&copy, "v2").unwrap().manifests[0].bytes, image.manifests[0].bytes);

        let component = dir.path().join("c.wasm");
        std::fs::write(&component, b"\0asm\x0d\0\x01\0").unwrap();
        let BlobSource::Bytes(config) = &load(&component, "v1").unwrap().blobs[0].source else { panic!() };
        assert!(String::from_utf8_lossy(config).contains("wasip2"));
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("x.wasm");
        std::fs::write(&fake, b"#!/bin/sh\n").unwrap();
        let message = load(&fake, "v1").err().unwrap().to_string();
        assert_eq!(message, format!("{}: not a WebAssembly file", fake.display()));
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, b"hello").unwrap();
        assert!(load(&other, "v1").err().unwrap().to_string().contains("notes.txt: not a WebAssembly file, an OCI"));
        let missing = dir.path().join("missing.wasm");
        assert!(format!("{:#}", load(&missing, "v1").err().unwrap()).contains("missing.wasm: cannot read"));
        assert!(load(dir.path(), "v1").err().unwrap().to_string().contains("no index.json"));
    }

    /// Writes an OCI layout with two images in `dir`; returns their manifest digests.
    fn write_layout(dir: &Path) -> Vec<String> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8]| {
            let digest = sha256_hex(bytes);
            std::fs::write(blobs.join(&digest[7..]), bytes).unwrap();
            json!({"digest": digest, "size": bytes.len()})
        };
        let config = put(br#"{"architecture":"amd64","os":"linux"}"#);
        let layer = put(b"layer bytes");
        let mut entries = Vec::new();
        for tag in ["v1", "v2"] {
            let manifest = json!({
                "schemaVersion": 2, "mediaType": images::OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer["digest"], "size": layer["size"]}],
                "annotations": {"tag": tag},
            });
            let written = put(manifest.to_string().as_bytes());
            entries
                .push(json!({"mediaType": images::OCI_MANIFEST, "digest": written["digest"], "size": written["size"],
                "annotations": {REF_NAME: tag}}));
        }
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(dir.join("index.json"), json!({"schemaVersion": 2, "manifests": entries}).to_string()).unwrap();
        entries.iter().map(|e| e["digest"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn layouts_push_the_named_image_or_the_whole_index() {
        let dir = tempfile::tempdir().unwrap();
        let digests = write_layout(dir.path());
        let image = load(dir.path(), "v2").unwrap();
        assert_eq!(image.blobs.len(), 2);
        assert_eq!(image.manifests.len(), 1);
        assert_eq!(sha256_hex(&image.manifests[0].bytes), digests[1]);

        let image = load(dir.path(), "other").unwrap();
        assert_eq!(image.blobs.len(), 2, "shared blobs are pushed once");
        assert_eq!(image.manifests.len(), 3);
        assert_eq!(image.manifests[2].media_type, images::OCI_INDEX);

        // The same layout as a tar.
        let tar_path = dir.path().join("image.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        builder.append_path_with_name(dir.path().join("index.json"), "index.json").unwrap();
        builder.append_path_with_name(dir.path().join("oci-layout"), "oci-layout").unwrap();
        builder.append_dir_all("blobs", dir.path().join("blobs")).unwrap();
        builder.finish().unwrap();
        drop(builder);
        let image = load(&tar_path, "v1").unwrap();
        assert_eq!(sha256_hex(&image.manifests[0].bytes), digests[0]);
        let BlobSource::File(layer) = &image.blobs[1].source else { panic!("layers stream from files") };
        assert_eq!(std::fs::read(layer).unwrap(), b"layer bytes");

        std::fs::remove_file(dir.path().join("blobs/sha256").join(&sha256_hex(b"layer bytes")[7..])).unwrap();
        let message = load(dir.path(), "v1").err().unwrap().to_string();
        assert!(message.contains(&format!("blob {} is missing", sha256_hex(b"layer bytes"))), "{message}");
    }

    #[test]
    fn kubeconfigs_give_server_ca_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig.yaml");
        let ca = base64::engine::general_purpose::STANDARD.encode("-----BEGIN CERTIFICATE-----\n");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: wharf\nclusters:\n- name: other\n  cluster: {{server: https://x:1}}\n\
                 - name: wharf\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: {ca}\n\
                 users:\n- name: admin\n  user: {{tokenFile: token}}\ncontexts:\n- name: wharf\n  context: {{cluster: wharf, user: admin}}\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
        let cluster = Cluster::load(&path).unwrap();
        assert_eq!(cluster.registry, "127.0.0.1:6443");
        assert!(!cluster.plain_http);
        assert_eq!(cluster.ca_pem.as_deref(), Some("-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(cluster.credentials(), Credentials::Bearer("s3cret".into()));
        let missing = Cluster::load(&dir.path().join("nope.yaml")).unwrap_err().to_string();
        assert!(missing.contains("nope.yaml: cannot read the kubeconfig"), "{missing}");
    }

    #[test]
    fn several_servers_give_the_registry_of_the_first_listening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig.yaml");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let live = live.local_addr().map(|addr| (addr, live)).unwrap();
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: wharf\nclusters:\n- name: wharf\n  cluster:\n    server: https://{closed}\n\
                 \x20   extensions:\n    - name: wharf.dev/servers\n      extension: {{servers: [https://{closed}, https://{}]}}\n\
                 users:\n- name: admin\n  user: {{token: t}}\ncontexts:\n- name: wharf\n  context: {{cluster: wharf, user: admin}}\n",
                live.0
            ),
        )
        .unwrap();
        assert_eq!(Cluster::load(&path).unwrap().registry, live.0.to_string());
    }

    #[test]
    fn tables_and_sizes() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
        let rows = [["A", "LONG HEADER"].map(String::from), ["value", "x"].map(String::from)];
        assert_eq!(table(&rows), "A       LONG HEADER\nvalue   x\n");
    }

    /// An entry of a test archive: a file with its content, or a symlink to a target.
    #[derive(Clone, Copy)]
    enum Entry<'a> {
        File(&'a str, &'a [u8]),
        Link(&'a str, &'a str),
    }

    /// A tar at `path` of `entries`, in order.
    fn write_tar(path: &Path, entries: &[Entry]) {
        let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
        for entry in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            match *entry {
                Entry::File(name, data) => {
                    header.set_size(data.len() as u64);
                    builder.append_data(&mut header, name, data).unwrap();
                }
                Entry::Link(name, target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, name, target).unwrap();
                }
            }
        }
        builder.finish().unwrap();
    }

    fn config_for(layers: &[&[u8]]) -> Vec<u8> {
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256_hex(l)).collect();
        serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids}}))
        .unwrap()
    }

    #[test]
    fn legacy_docker_saves_become_oci_manifests_with_plain_layers() {
        let dir = tempfile::tempdir().unwrap();
        let (base, top) = (b"base layer tar".as_slice(), b"top layer tar".as_slice());
        let config = config_for(&[base, top]);
        let other_config = config_for(&[base]);
        let saved = json!([
            {"Config": "other.json", "RepoTags": ["app:old"], "Layers": ["aaa/layer.tar"]},
            {"Config": "cfg.json", "RepoTags": ["app:v1", "app:latest"], "Layers": ["aaa/layer.tar", "bbb/layer.tar"]},
        ]);
        let archive = dir.path().join("app.tar");
        write_tar(
            &archive,
            &[
                Entry::File("manifest.json", saved.to_string().as_bytes()),
                Entry::File("cfg.json", &config),
                Entry::File("other.json", &other_config),
                Entry::File("aaa/layer.tar", base),
                Entry::File("shared/layer.tar", top),
                // Docker links a layer it already saved.
                Entry::Link("bbb/layer.tar", "../shared/layer.tar"),
            ],
        );
        let image = load(&archive, "v1").unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifests[0].bytes).unwrap();
        assert_eq!(image.manifests.len(), 1);
        assert_eq!(image.manifests[0].media_type, images::OCI_MANIFEST);
        assert_eq!(manifest["config"]["digest"], sha256_hex(&config));
        assert_eq!(manifest["config"]["mediaType"], images::OCI_CONFIG);
        let layers: Vec<(&str, &str)> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["mediaType"].as_str().unwrap(), l["digest"].as_str().unwrap()))
            .collect();
        let (base_digest, top_digest) = (sha256_hex(base), sha256_hex(top));
        assert_eq!(layers, [(images::OCI_LAYER, base_digest.as_str()), (images::OCI_LAYER, top_digest.as_str())]);
        let digests: Vec<&str> = image.blobs.iter().map(|b| b.digest.as_str()).collect();
        assert_eq!(digests, [base_digest.clone(), top_digest, sha256_hex(&config)]);
        assert_eq!(image.bytes(), (base.len() + top.len() + config.len()) as u64);
        let parsed: ImageManifest = serde_json::from_slice(&image.manifests[0].bytes).unwrap();
        let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(images::runtime_kind(&parsed, &config), images::RuntimeKind::Linux);

        // The other image by its tag; an unknown tag among several images is an error.
        let old = load(&archive, "old").unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&old.manifests[0].bytes).unwrap();
        assert_eq!(manifest["layers"][0]["digest"], base_digest);
        let message = load(&archive, "v9").err().unwrap().to_string();
        assert!(
            message.contains("holds 2 images and none is tagged \"v9\"") && message.contains("app:old"),
            "{message}"
        );
    }

    #[test]
    fn docker_25_saves_use_manifest_json_and_type_layers_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let save = dir.path().join("save");
        let blobs = save.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let layer_tar = b"uncompressed".as_slice();
        let gzipped = [0x1f, 0x8b, 8, 0, 1, 2, 3];
        let config = config_for(&[layer_tar, b"whatever gunzips from it"]);
        let put = |bytes: &[u8]| {
            let digest = sha256_hex(bytes);
            std::fs::write(blobs.join(&digest[7..]), bytes).unwrap();
            format!("blobs/sha256/{}", &digest[7..])
        };
        let layers = [put(layer_tar), put(&gzipped)];
        let saved = json!([{"Config": put(&config), "RepoTags": ["app:v1"], "Layers": layers}]);
        std::fs::write(save.join("manifest.json"), saved.to_string()).unwrap();
        // Its index names a multi-platform index whose blobs the save does not have.
        let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": images::OCI_INDEX,
            "digest": sha256_hex(b"absent"), "size": 6}]});
        std::fs::write(save.join("index.json"), index.to_string()).unwrap();
        let image = load(&save, "v1").unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifests[0].bytes).unwrap();
        assert_eq!(manifest["layers"][0]["mediaType"], images::OCI_LAYER);
        assert_eq!(manifest["layers"][1]["mediaType"], images::OCI_LAYER_GZIP);
        assert_eq!(manifest["layers"][1]["digest"], sha256_hex(&gzipped));
    }

    #[test]
    fn docker_save_errors_name_the_archive_and_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let layer = b"layer".as_slice();
        let config = config_for(&[layer]);
        let archive = dir.path().join("bad.tar");
        let check = |layers: &[&str], files: &[Entry], wanted: &str| {
            let saved = json!([{"Config": "cfg.json", "Layers": layers}]).to_string();
            let mut all =
                vec![Entry::File("manifest.json", saved.as_bytes()), Entry::File("cfg.json", config.as_slice())];
            all.extend_from_slice(files);
            write_tar(&archive, &all);
            let message = load(&archive, "v1").err().unwrap().to_string();
            assert!(message.starts_with(&format!("{}: ", archive.display())), "{message}");
            assert!(message.contains(wanted), "{wanted}: {message}");
        };
        check(&["gone/layer.tar"], &[], "gone/layer.tar: missing from the archive");
        check(&["/etc/passwd"], &[], "/etc/passwd: not a file inside the archive");
        check(&["../../../../etc/passwd"], &[], "not a file inside the archive");
        check(&["out/layer.tar"], &[Entry::Link("out/layer.tar", "/etc/passwd")], "out/layer.tar: not a file inside");
        let other = sha256_hex(b"other");
        check(
            &["l/layer.tar"],
            &[Entry::File("l/layer.tar", b"other")],
            &format!("l/layer.tar: its digest is {other}, the config's rootfs.diff_ids says \"{}\"", sha256_hex(layer)),
        );
        check(
            &["l/layer.tar", "l/layer.tar"],
            &[Entry::File("l/layer.tar", layer)],
            "lists 1 rootfs.diff_ids for 2 layers",
        );
    }
}
