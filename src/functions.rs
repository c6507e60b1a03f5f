//! `wharf fn`: deploy, list, invoke, read the logs of and remove Functions (`wharf.dev/v1`).
//!
//! `deploy --wasm FILE` checks the file is a `wasi:http/proxy` component, imports it into the
//! cluster's embedded registry as `fn-NAME:<first 12 hex digits of its SHA-256>` (the way
//! `wharf image import` does: a changed file gets a new tag, so nodes pull it anew), then
//! creates the Function or replaces its spec. `invoke` calls a node's gateway, found from the
//! Nodes' `wharf.dev/gateway` annotations. `logs` of a Wasm function are read from the
//! gateways (the guests' stdout and stderr, which each node keeps per function and serves to
//! clients on that node only); of a Linux-image function, from its pods through the API.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, LogParams, PostParams};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wharf_runtime::gateway::{GATEWAY_ANNOTATION, functions_resource};

use crate::image;

#[derive(clap::Args)]
pub struct FnArgs {
    /// The cluster's kubeconfig (default: $KUBECONFIG, then the data dir's kubeconfig.yaml).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the function.
    #[arg(short = 'n', long, global = true, default_value = "default")]
    namespace: String,
    #[command(subcommand)]
    command: FnCommand,
}

#[derive(Subcommand)]
enum FnCommand {
    /// Create or update a function from a Wasm component file or an image.
    Deploy {
        name: String,
        /// A `wasi:http/proxy` component (.wasm), imported into the cluster's registry.
        #[arg(long, conflicts_with = "image", required_unless_present = "image")]
        wasm: Option<PathBuf>,
        /// An image reference: a Wasm artifact or a Linux image serving HTTP.
        #[arg(long)]
        image: Option<String>,
        /// Port a Linux-image function listens on.
        #[arg(long, requires = "image")]
        port: Option<u16>,
        /// URL path prefix the gateway routes to the function (default /NAME).
        #[arg(long)]
        path: Option<String>,
        /// Host header the route is for (default: any).
        #[arg(long)]
        host: Option<String>,
        /// Fewest instances (0: scale to zero).
        #[arg(long)]
        min: Option<i32>,
        /// Most instances.
        #[arg(long)]
        max: Option<i32>,
        /// Memory limit of each instance (a Wasm request's linear memory), e.g. 64Mi.
        #[arg(long)]
        memory: Option<String>,
        /// How long one request may take, e.g. 500ms, 10s (annotation wharf.dev/timeout).
        #[arg(long)]
        timeout: Option<String>,
        /// Requests one node's gateway runs at once (annotation wharf.dev/concurrency).
        #[arg(long)]
        concurrency: Option<u32>,
    },
    /// List functions: NAME, URL, RUNTIME, READY, INVOCATIONS.
    Ls,
    /// Call a function through a node's gateway and print the response body.
    Invoke {
        name: String,
        /// Request body: TEXT, @FILE, or - for stdin. Sends POST unless --method says otherwise.
        #[arg(long, short = 'd')]
        data: Option<String>,
        /// A request header K:V (repeatable).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// HTTP method (default GET, POST with --data).
        #[arg(long, short = 'X')]
        method: Option<String>,
        /// Path to request, under or instead of the function's route (default: the route).
        #[arg(long)]
        path: Option<String>,
    },
    /// Print a function's logs: a Wasm function's output from the gateways, a Linux-image
    /// function's pods' logs.
    Logs {
        name: String,
        /// Keep printing new output.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Delete a function (and, for a Linux image, its Deployment).
    Rm { name: String },
}

pub async fn run(args: FnArgs) -> anyhow::Result<()> {
    let path = image::kubeconfig_path(args.kubeconfig);
    let ns = args.namespace;
    match args.command {
        FnCommand::Deploy { name, wasm, image, port, path: route, host, min, max, memory, timeout, concurrency } => {
            let image = match (wasm, image) {
                (Some(file), _) => import_wasm(&path, &name, &file).await?,
                (None, Some(image)) => image,
                (None, None) => bail!("give --wasm FILE or --image REF"),
            };
            let spec = Spec { image, port, route, host, min, max, memory, timeout, concurrency };
            deploy(&client(&path).await?, &ns, &name, spec).await
        }
        FnCommand::Ls => list(&client(&path).await?, &ns).await,
        FnCommand::Invoke { name, data, headers, method, path: request_path } => {
            invoke(&client(&path).await?, &ns, &name, data, headers, method, request_path).await
        }
        FnCommand::Logs { name, follow } => logs(&client(&path).await?, &ns, &name, follow).await,
        FnCommand::Rm { name } => {
            functions(&client(&path).await?, &ns)
                .delete(&name, &DeleteParams::background())
                .await
                .map_err(|e| api_error(e, &ns, &name))?;
            println!("function {ns}/{name} deleted");
            Ok(())
        }
    }
}

/// The API client `wharf image|fn|token` use: as the kubeconfig describes, failing over across
/// the servers its cluster lists (`wharf.dev/servers`, else `server`).
pub(crate) async fn client(kubeconfig: &std::path::Path) -> anyhow::Result<kube::Client> {
    let shown = kubeconfig.display();
    let config = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("{shown}: cannot read the kubeconfig (is the server running? see --kubeconfig)"))?;
    wharf_runtime::api_client::from_kubeconfig(config).await.with_context(|| shown.to_string())
}

/// A plain-HTTP client for the gateways (reqwest is built without a default TLS provider).
pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder().no_proxy().http1_only().pool_max_idle_per_host(64).build()?)
}

fn functions(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &functions_resource())
}

fn api_error(e: kube::Error, ns: &str, name: &str) -> anyhow::Error {
    match e {
        kube::Error::Api(status) if status.code == 404 => anyhow::anyhow!("function {ns}/{name} not found"),
        e => anyhow::Error::new(e).context(format!("function {ns}/{name}")),
    }
}

/// Checks and imports a component; returns the reference the Function uses.
async fn import_wasm(kubeconfig: &std::path::Path, name: &str, file: &std::path::Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("{}: file not found or unreadable", file.display()))?;
    wharf_shim_wasmtime::check_proxy_component(&bytes)
        .map_err(|why| anyhow::anyhow!("{}: not a component of the wasi:http/proxy world: {why}", file.display()))?;
    let tag = format!("{:x}", Sha256::digest(&bytes));
    let reference = format!("fn-{name}:{}", &tag[..12]);
    let cluster = image::Cluster::load(kubeconfig)?;
    image::import(&cluster, file, &reference).await?;
    Ok(reference)
}

struct Spec {
    image: String,
    port: Option<u16>,
    route: Option<String>,
    host: Option<String>,
    min: Option<i32>,
    max: Option<i32>,
    memory: Option<String>,
    timeout: Option<String>,
    concurrency: Option<u32>,
}

impl Spec {
    /// The Function's spec and the annotations it sets.
    fn to_json(&self) -> (Value, BTreeMap<String, String>) {
        let mut spec = json!({"image": self.image});
        if let Some(port) = self.port {
            spec["port"] = json!(port);
        }
        let mut route = serde_json::Map::new();
        if let Some(path) = &self.route {
            let path = if path.starts_with('/') { path.clone() } else { format!("/{path}") };
            route.insert("path".into(), json!(path));
        }
        if let Some(host) = &self.host {
            route.insert("host".into(), json!(host));
        }
        if !route.is_empty() {
            spec["route"] = Value::Object(route);
        }
        let mut scale = serde_json::Map::new();
        if let Some(min) = self.min {
            scale.insert("minReplicas".into(), json!(min));
        }
        if let Some(max) = self.max {
            scale.insert("maxReplicas".into(), json!(max));
        }
        if !scale.is_empty() {
            spec["scale"] = Value::Object(scale);
        }
        if let Some(memory) = &self.memory {
            spec["resources"] = json!({"limits": {"memory": memory}});
        }
        let mut annotations = BTreeMap::new();
        if let Some(timeout) = &self.timeout {
            annotations.insert(wharf_runtime::gateway::routes::TIMEOUT_ANNOTATION.to_string(), timeout.clone());
        }
        if let Some(concurrency) = self.concurrency {
            annotations
                .insert(wharf_runtime::gateway::routes::CONCURRENCY_ANNOTATION.to_string(), concurrency.to_string());
        }
        (spec, annotations)
    }
}

/// Creates the Function, or replaces the spec of the existing one (keeping its other
/// annotations and labels).
async fn deploy(client: &kube::Client, ns: &str, name: &str, spec: Spec) -> anyhow::Result<()> {
    let api = functions(client, ns);
    let (spec_json, annotations) = spec.to_json();
    for attempt in 0..5 {
        match api.get_opt(name).await? {
            None => {
                let object: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "wharf.dev/v1", "kind": "Function",
                    "metadata": {"name": name, "namespace": ns, "annotations": annotations},
                    "spec": spec_json,
                }))?;
                match api.create(&PostParams::default(), &object).await {
                    Ok(_) => {
                        println!("function {ns}/{name} created ({})", spec.image);
                        return Ok(());
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 && attempt < 4 => continue,
                    Err(e) => return Err(anyhow::Error::new(e).context(format!("creating function {ns}/{name}"))),
                }
            }
            Some(mut existing) => {
                existing.metadata.annotations.get_or_insert_default().extend(annotations.clone());
                existing.data["spec"] = spec_json.clone();
                match api.replace(name, &PostParams::default(), &existing).await {
                    Ok(_) => {
                        println!("function {ns}/{name} updated ({})", spec.image);
                        return Ok(());
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 && attempt < 4 => continue,
                    Err(e) => return Err(anyhow::Error::new(e).context(format!("updating function {ns}/{name}"))),
                }
            }
        }
    }
    bail!("function {ns}/{name} kept changing while it was being updated; try again")
}

/// Whether a Function runs as a Deployment it owns (a Linux image).
fn owns(deployments: &[Deployment], function: &str) -> bool {
    deployments.iter().any(|d| {
        d.metadata.name.as_deref() == Some(function)
            && d.metadata.owner_references.iter().flatten().any(|o| o.kind == "Function" && o.name == function)
    })
}

async fn list(client: &kube::Client, ns: &str) -> anyhow::Result<()> {
    let list = functions(client, ns).list(&ListParams::default()).await?;
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items;
    let mut rows = vec![["NAME", "URL", "RUNTIME", "READY", "INVOCATIONS"].map(String::from)];
    for f in &list.items {
        let name = f.metadata.name.clone().unwrap_or_default();
        let status = &f.data["status"];
        let runtime = match f.data["spec"]["runtimeClassName"].as_str() {
            Some(class) => class.to_string(),
            None if owns(&deployments, &name) => "youki".into(),
            None => "wasmtime".into(),
        };
        let ready = status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .map(|c| match (c["status"].as_str(), c["reason"].as_str()) {
                (Some("True"), _) => "True".to_string(),
                (Some(s), Some(reason)) => format!("{s} ({reason})"),
                (s, _) => s.unwrap_or("Unknown").to_string(),
            })
            .unwrap_or_else(|| "Unknown".into());
        rows.push([
            name,
            status["url"].as_str().unwrap_or("<none>").to_string(),
            runtime,
            ready,
            status["invocations"].as_i64().unwrap_or(0).to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..5).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

/// The gateway URLs the Nodes announce, ready nodes first.
async fn gateways(client: &kube::Client) -> anyhow::Result<Vec<String>> {
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await?.items;
    let ready = |n: &Node| wharf_control::controllers::node_lifecycle::ready_status(n) == Some("True");
    let mut found: Vec<(bool, String)> = nodes
        .iter()
        .filter_map(|n| Some((!ready(n), n.metadata.annotations.as_ref()?.get(GATEWAY_ANNOTATION)?.clone())))
        .collect();
    found.sort();
    if found.is_empty() {
        bail!("no gateway: no node announces one (annotation {GATEWAY_ANNOTATION}); is a node agent running?");
    }
    Ok(found.into_iter().map(|(_, url)| url).collect())
}

async fn invoke(
    client: &kube::Client,
    ns: &str,
    name: &str,
    data: Option<String>,
    headers: Vec<String>,
    method: Option<String>,
    path: Option<String>,
) -> anyhow::Result<()> {
    let function = functions(client, ns).get(name).await.map_err(|e| api_error(e, ns, name))?;
    let route = &function.data["spec"]["route"];
    let route_path = route["path"].as_str().map(str::to_string).unwrap_or_else(|| format!("/{name}"));
    let path = path.unwrap_or(route_path);
    let gateway = gateways(client).await?.remove(0);
    let body = match data.as_deref() {
        None => None,
        Some("-") => {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes).context("reading the request body from stdin")?;
            Some(bytes)
        }
        Some(text) => match text.strip_prefix('@') {
            Some(file) => Some(std::fs::read(file).with_context(|| format!("{file}: file not found or unreadable"))?),
            None => Some(text.as_bytes().to_vec()),
        },
    };
    let method = method.unwrap_or_else(|| if body.is_some() { "POST".into() } else { "GET".into() });
    let method =
        reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).with_context(|| format!("--method {method}"))?;
    let url =
        format!("{}{}", gateway.trim_end_matches('/'), if path.starts_with('/') { path } else { format!("/{path}") });
    let http = http_client()?;
    let mut request = http.request(method, &url);
    if let Some(host) = route["host"].as_str() {
        request = request.header("host", host);
    }
    for header in &headers {
        let (key, value) = header.split_once(':').with_context(|| format!("--header {header}: want K:V"))?;
        request = request.header(key.trim(), value.trim());
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.with_context(|| format!("cannot reach the gateway at {url}"))?;
    let status = response.status();
    let body = response.bytes().await.with_context(|| format!("reading the answer of {url}"))?;
    std::io::stdout().write_all(&body)?;
    if !status.is_success() {
        bail!("{url} answered {status}");
    }
    Ok(())
}

async fn logs(client: &kube::Client, ns: &str, name: &str, follow: bool) -> anyhow::Result<()> {
    functions(client, ns).get(name).await.map_err(|e| api_error(e, ns, name))?;
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items;
    if owns(&deployments, name) {
        return pod_logs(client, ns, name, follow).await;
    }
    let http = http_client()?;
    let query = if follow { "?follow=true" } else { "" };
    let mut streams = Vec::new();
    for gateway in gateways(client).await? {
        let url = format!("{}/.wharf/logs/{ns}/{name}{query}", gateway.trim_end_matches('/'));
        let response = http.get(&url).send().await.with_context(|| format!("cannot reach the gateway at {url}"))?;
        if !response.status().is_success() {
            eprintln!("{gateway}: {}", response.status());
            continue;
        }
        streams.push(response.bytes_stream());
    }
    let mut all = futures::stream::select_all(streams);
    while let Some(chunk) = all.next().await {
        std::io::stdout().write_all(&chunk?)?;
        std::io::stdout().flush()?;
    }
    Ok(())
}

async fn pod_logs(client: &kube::Client, ns: &str, name: &str, follow: bool) -> anyhow::Result<()> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let selector = format!("{}={name}", wharf_runtime::gateway::linux::FUNCTION_LABEL);
    let list = pods.list(&ListParams::default().labels(&selector)).await?.items;
    if list.is_empty() {
        eprintln!("function {ns}/{name} has no pods (scaled to zero)");
        return Ok(());
    }
    let params = LogParams { follow, ..LogParams::default() };
    let mut streams = Vec::new();
    for pod in &list {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let lines = pods.log_stream(&pod_name, &params).await?.lines();
        streams.push(lines.map_ok(move |line| format!("[{pod_name}] {line}\n")).boxed());
    }
    let mut all = futures::stream::select_all(streams);
    while let Some(line) = all.try_next().await? {
        print!("{line}");
        std::io::stdout().flush()?;
    }
    Ok(())
}
