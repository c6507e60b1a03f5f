//! `wharf image`: loads a `.wasm` file, an OCI image layout directory or an OCI image tar into
//! the cluster's embedded registry, and lists what that registry holds.
//!
//! A `.wasm` file becomes a Wasm OCI artifact (the CNCF layout): a config of media type
//! `application/vnd.wasm.config.v0+json` with architecture `wasm` and os `wasip1` (a module) or
//! `wasip2` (a component), and the file as its one `application/wasm` layer. Nothing in it
//! depends on time or file name, so the same file always gets the same digest. A layout or tar
//! is pushed as it is, every blob: its one image, or the entry whose
//! `org.opencontainers.image.ref.name` is the tag, or else its whole index.
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
    /// Load a .wasm file, an OCI image layout directory or an OCI image tar into the registry.
    ///
    /// Prints the reference pods use (NAME:TAG) as its last line.
    Import {
        /// FILE.wasm, OCI-LAYOUT-DIR or OCI-TAR.
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
fn kubeconfig_path(flag: Option<PathBuf>) -> PathBuf {
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
struct Cluster {
    /// `host:port` of the API server, which serves the registry at `/v2/`.
    registry: String,
    plain_http: bool,
    ca_pem: Option<String>,
    token: Option<String>,
}

impl Cluster {
    fn load(path: &Path) -> anyhow::Result<Self> {
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

/// Reads what `path` holds: a Wasm binary, an OCI image layout directory or an OCI image tar.
fn load(path: &Path, tag: &str) -> anyhow::Result<LocalImage> {
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("{shown}: cannot read"))?;
    if meta.is_dir() {
        return read_layout(path, path, tag);
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
        let mut image = read_layout(unpacked.path(), path, tag)?;
        image._unpacked = Some(unpacked);
        return Ok(image);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        bail!("{shown}: a compressed tar; decompress it first (gunzip)");
    }
    if path.extension().is_some_and(|e| e == "wasm") {
        bail!("{shown}: not a WebAssembly file");
    }
    bail!("{shown}: not a WebAssembly file, an OCI image layout directory or an OCI image tar")
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

async fn import(cluster: &Cluster, path: &Path, name: &str) -> anyhow::Result<()> {
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
    let digest = client
        .push(&target, &cluster.credentials(), &image.blobs, &image.manifests)
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
    fn tables_and_sizes() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
        let rows = [["A", "LONG HEADER"].map(String::from), ["value", "x"].map(String::from)];
        assert_eq!(table(&rows), "A       LONG HEADER\nvalue   x\n");
    }
}
