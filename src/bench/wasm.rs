//! What `wharf bench pods` and `wharf bench density` share: the WAT guests of the end-to-end
//! tests as `.wasm` files, importing them into the server's registry, waiting for the local node,
//! and a watch on the pods of one namespace that tells each creator when its pod reached a phase.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::{Container, Namespace, Node, Pod, PodSpec};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::Value;
use tokio::sync::oneshot;

use super::{Server, meta};

/// The node name the benchmarks give the local node.
pub(super) const NODE: &str = "wharf-bench";
/// Longest wait for the local node to be Ready.
const NODE_LIMIT: Duration = Duration::from_secs(60);
/// Longest one `wharf image import` may take.
const IMPORT_LIMIT: Duration = Duration::from_secs(60);
/// Reconnections of the pod watch before it gives up (it reconnects when the server ends a watch).
const WATCH_RECONNECTS: usize = 20;

/// The guest `tests/fixtures/NAME.wat`, assembled.
pub(super) fn fixture(name: &str) -> Result<Vec<u8>> {
    let source = match name {
        "hello" => include_str!("../../tests/fixtures/hello.wat"),
        "ticker" => include_str!("../../tests/fixtures/ticker.wat"),
        _ => bail!("no fixture {name}"),
    };
    wat::parse_str(source).with_context(|| format!("tests/fixtures/{name}.wat does not assemble"))
}

/// `module` with a custom section carrying `id` appended: the same code under another digest,
/// so the node has to pull and compile it as a new module.
pub(super) fn with_custom_section(module: &[u8], id: &str) -> Vec<u8> {
    const NAME: &[u8] = b"wharf-bench";
    let mut payload = leb128(NAME.len());
    payload.extend_from_slice(NAME);
    payload.extend_from_slice(id.as_bytes());
    let mut out = module.to_vec();
    out.push(0);
    out.extend(leb128(payload.len()));
    out.extend(payload);
    out
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// `wharf image import FILE --name NAME` against the benchmark's server.
pub(super) async fn import(exe: &Path, server: &Server, file: &Path, name: &str) -> Result<()> {
    let kubeconfig = server.data_dir.join("kubeconfig.yaml");
    let run = tokio::process::Command::new(exe)
        .args(["image", "import"])
        .arg(file)
        .args(["--name", name, "--kubeconfig"])
        .arg(&kubeconfig)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(IMPORT_LIMIT, run)
        .await
        .with_context(|| format!("wharf image import {name} took over {IMPORT_LIMIT:?}"))??;
    if !out.status.success() {
        bail!("wharf image import {} --name {name} failed: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Waits until the node `NODE` reports Ready; how long that took from the call.
pub(super) async fn node_ready(client: &kube::Client) -> Result<Duration> {
    let nodes: Api<Node> = Api::all(client.clone());
    let started = Instant::now();
    loop {
        if let Ok(Some(node)) = nodes.get_opt(NODE).await {
            let ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True");
            if ready {
                return Ok(started.elapsed());
            }
        }
        if started.elapsed() > NODE_LIMIT {
            bail!("node {NODE} was not Ready within {NODE_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(super) async fn create_namespace(client: &kube::Client, name: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace { metadata: meta(name), ..Default::default() };
    namespaces.create(&PostParams::default(), &ns).await.with_context(|| format!("cannot create namespace {name}"))?;
    Ok(())
}

/// A pod of one container running `image` with `restart_policy`.
pub(super) fn pod(name: &str, container: &str, image: &str, restart_policy: &str) -> Pod {
    Pod {
        metadata: meta(name),
        spec: Some(PodSpec {
            restart_policy: Some(restart_policy.into()),
            containers: vec![Container {
                name: container.into(),
                image: Some(image.into()),
                image_pull_policy: Some("IfNotPresent".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What the watch last saw of one pod.
#[derive(Clone, Debug, Default)]
pub(super) struct PodState {
    pub phase: String,
    /// The first container's waiting or terminated reason, else the PodScheduled=False reason.
    pub reason: String,
    pub message: String,
    pub restarts: i64,
    pub deleted: bool,
}

impl PodState {
    fn of(object: &Value, deleted: bool) -> Self {
        let status = &object["status"];
        let container = &status["containerStatuses"][0];
        let state = &container["state"];
        let (reason, message) = ["waiting", "terminated"]
            .iter()
            .map(|s| &state[s])
            .chain(
                status["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["type"] == "PodScheduled" && c["status"] == "False"),
            )
            .find(|v| v.is_object())
            .map(|v| (text(&v["reason"]), text(&v["message"])))
            .unwrap_or_default();
        PodState {
            phase: status["phase"].as_str().unwrap_or("Pending").to_string(),
            reason,
            message,
            restarts: container["restartCount"].as_i64().unwrap_or(0),
            deleted,
        }
    }

    /// `Phase` or `Phase/Reason`.
    pub fn label(&self) -> String {
        match (self.deleted, self.reason.is_empty()) {
            (true, _) => "deleted".into(),
            (false, true) => self.phase.clone(),
            (false, false) => format!("{}/{}", self.phase, self.reason),
        }
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// When a pod reached one of the phases its creator waits for, as the watch saw it.
pub(super) struct Reached {
    pub phase: String,
    pub at: Instant,
}

struct Waiter {
    phases: &'static [&'static str],
    tx: oneshot::Sender<Reached>,
}

#[derive(Default)]
struct Watched {
    pods: HashMap<String, PodState>,
    waiters: HashMap<String, Waiter>,
    problems: Vec<String>,
}

/// One watch on the pods of a namespace, read as events arrive (the instant a line is read is
/// when a phase was "seen").
pub(super) struct PodWatch {
    shared: Arc<Mutex<Watched>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodWatch {
    /// Opens the watch from the namespace's current revision; returns once the server answered.
    pub(super) async fn start(client: &kube::Client, ns: &str) -> Result<Self> {
        let shared = Arc::new(Mutex::new(Watched::default()));
        let (opened_tx, opened_rx) = oneshot::channel();
        let task = tokio::spawn(follow(client.clone(), ns.to_string(), shared.clone(), opened_tx));
        opened_rx.await.context("the pod watch task ended")??;
        Ok(PodWatch { shared, task })
    }

    /// Asks to be told when `name` reaches one of `phases`. Register before creating the pod.
    pub(super) fn wait_for(&self, name: &str, phases: &'static [&'static str]) -> oneshot::Receiver<Reached> {
        let (tx, rx) = oneshot::channel();
        self.shared.lock().expect("watch lock").waiters.insert(name.to_string(), Waiter { phases, tx });
        rx
    }

    /// What the watch last saw of `name`.
    pub(super) fn state(&self, name: &str) -> Option<PodState> {
        self.shared.lock().expect("watch lock").pods.get(name).cloned()
    }

    /// How many pods (not deleted) are in each `Phase` or `Phase/Reason`.
    pub(super) fn census(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for state in self.shared.lock().expect("watch lock").pods.values().filter(|s| !s.deleted) {
            *out.entry(state.label()).or_default() += 1;
        }
        out
    }

    /// A few pods in `label` (as [`PodState::label`] words it), with their messages.
    pub(super) fn examples(&self, label: &str, n: usize) -> Vec<String> {
        let watched = self.shared.lock().expect("watch lock");
        let mut names: Vec<(&String, &PodState)> =
            watched.pods.iter().filter(|(_, s)| !s.deleted && s.label() == label).collect();
        names.sort_by_key(|(n, _)| n.as_str());
        names.into_iter().take(n).map(|(name, s)| format!("{name}: {}", s.message)).collect()
    }

    /// Problems the watch itself had (stream errors, reconnections).
    pub(super) fn problems(&self) -> Vec<String> {
        self.shared.lock().expect("watch lock").problems.clone()
    }
}

async fn follow(client: kube::Client, ns: String, shared: Arc<Mutex<Watched>>, opened: oneshot::Sender<Result<()>>) {
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut opened = Some(opened);
    let mut revision = String::new();
    for attempt in 0..=WATCH_RECONNECTS {
        if revision.is_empty() {
            match api.list(&ListParams::default().limit(1)).await {
                Ok(list) => revision = list.metadata.resource_version.unwrap_or_default(),
                Err(e) => {
                    if let Some(tx) = opened.take() {
                        let _ = tx.send(Err(anyhow::anyhow!("cannot list pods in {ns}: {e}")));
                        return;
                    }
                }
            }
        }
        let path = format!("/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={revision}&timeoutSeconds=3600");
        let stream = match http::Request::get(&path).body(Vec::new()) {
            Ok(request) => client.request_stream(request).await,
            Err(e) => {
                if let Some(tx) = opened.take() {
                    let _ = tx.send(Err(e.into()));
                }
                return;
            }
        };
        let reader = match stream {
            Ok(reader) => reader,
            Err(e) => {
                if let Some(tx) = opened.take() {
                    let _ = tx.send(Err(anyhow::anyhow!("cannot watch pods in {ns}: {e}")));
                    return;
                }
                shared.lock().expect("watch lock").problems.push(format!("pod watch could not reopen: {e}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if let Some(tx) = opened.take() {
            let _ = tx.send(Ok(()));
        }
        let mut reader = std::pin::pin!(reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    shared.lock().expect("watch lock").problems.push(format!("pod watch stream failed: {e}"));
                    break;
                }
            }
            let at = Instant::now();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else { continue };
            let object = &event["object"];
            match event["type"].as_str() {
                Some("ERROR") => {
                    shared.lock().expect("watch lock").problems.push(format!("pod watch error: {object}"));
                    revision.clear();
                    break;
                }
                Some(kind @ ("ADDED" | "MODIFIED" | "DELETED")) => {
                    if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
                        revision = rv.to_string();
                    }
                    let name = text(&object["metadata"]["name"]);
                    let state = PodState::of(object, kind == "DELETED");
                    let mut watched = shared.lock().expect("watch lock");
                    if let Some(waiter) = watched.waiters.get(&name)
                        && !state.deleted
                        && waiter.phases.contains(&state.phase.as_str())
                        && let Some(waiter) = watched.waiters.remove(&name)
                    {
                        let _ = waiter.tx.send(Reached { phase: state.phase.clone(), at });
                    }
                    watched.pods.insert(name, state);
                }
                _ => {}
            }
        }
        if attempt == WATCH_RECONNECTS {
            shared.lock().expect("watch lock").problems.push("pod watch gave up reconnecting".into());
        }
    }
}

/// One pod started by a benchmark: when its create was sent and what became of it.
pub(super) struct Started {
    pub name: String,
    pub sent: Instant,
    /// Wall-clock time of the send, to compare with event timestamps.
    pub sent_wall: SystemTime,
    pub created: Result<Duration, String>,
    pub reached: Option<oneshot::Receiver<Reached>>,
}

/// Registers a waiter for `phases`, then creates `pod`.
pub(super) async fn start_pod(
    api: &Api<Pod>,
    watch: &PodWatch,
    pod: Pod,
    phases: &'static [&'static str],
    limit: Duration,
) -> Started {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let reached = watch.wait_for(&name, phases);
    let (sent, sent_wall) = (Instant::now(), SystemTime::now());
    let created = match tokio::time::timeout(limit, api.create(&PostParams::default(), &pod)).await {
        Ok(Ok(_)) => Ok(sent.elapsed()),
        Ok(Err(e)) => Err(format!("POST pods {name} failed: {e}")),
        Err(_) => Err(format!("POST pods {name} got no answer within {limit:?}")),
    };
    let reached = created.is_ok().then_some(reached);
    Started { name, sent, sent_wall, created, reached }
}

/// Why a pod did not reach its phase within `limit`, from what the watch saw of it.
pub(super) fn stuck(watch: &PodWatch, name: &str, limit: Duration) -> String {
    match watch.state(name) {
        Some(s) => format!(
            "{name} did not get there within {limit:?}; last seen {} (restarts {}){}",
            s.label(),
            s.restarts,
            if s.message.is_empty() { String::new() } else { format!(": {}", s.message) }
        ),
        None => format!("{name} never showed up in the pod watch within {limit:?}"),
    }
}

/// Deletes every pod of `ns` and waits until they are gone; how long that took.
pub(super) async fn delete_all(client: &kube::Client, ns: &str, limit: Duration) -> Result<Duration> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .with_context(|| format!("cannot delete the pods of {ns}"))?;
    loop {
        let left = api.list(&ListParams::default()).await?;
        if left.items.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            let mut phases: BTreeMap<String, usize> = BTreeMap::new();
            for pod in &left.items {
                let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
                let deleting = if pod.metadata.deletion_timestamp.is_some() { ", deleting" } else { "" };
                *phases.entry(format!("{phase}{deleting}")).or_default() += 1;
            }
            bail!("{} pods of {ns} were still there {limit:?} after deleting them: {phases:?}", left.items.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Drives `count` pods through `start` with at most `in_flight` at once; `start(i)` returns the
/// outcome of pod `i` once it is done with it (the closed loop: the next one starts then).
pub(super) async fn bounded<T, F>(count: usize, in_flight: usize, start: impl Fn(usize) -> F) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    futures::stream::iter(0..count).map(start).buffer_unordered(in_flight.max(1)).collect().await
}

/// Open file descriptors of a process: all, sockets, regular files (anything else is pipes,
/// eventfds, epoll and the like).
#[derive(Clone, Copy, Default)]
pub(super) struct Fds {
    pub all: usize,
    pub sockets: usize,
    pub files: usize,
}

impl std::fmt::Display for Fds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} sockets, {} files)", self.all, self.sockets, self.files)
    }
}

/// Open file descriptors and threads of a process.
pub(super) fn fds_and_threads(pid: u32) -> (Fds, usize) {
    let mut fds = Fds::default();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten() {
        fds.all += 1;
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        let target = target.to_string_lossy();
        if target.starts_with("socket:") {
            fds.sockets += 1;
        } else if target.starts_with('/') {
            fds.files += 1;
        }
    }
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse::<usize>().ok()))
        .unwrap_or(0);
    (fds, threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_assemble_and_custom_sections_change_only_the_digest() {
        let hello = fixture("hello").unwrap();
        let tagged = with_custom_section(&hello, "42");
        assert!(tagged.starts_with(&hello));
        // section id 0, size 14 = name length (1 byte) + "wharf-bench" (11) + "42" (2), then the name length
        assert_eq!(&tagged[hello.len()..hello.len() + 3], &[0, 14, 11]);
        assert_eq!(leb128(300), vec![0xac, 0x02]);
    }
}
