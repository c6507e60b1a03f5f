//! The pod worker: one task per pod bound to this node. It prepares volumes, runs init
//! containers in order and then the app containers through the shims, restarts them per the
//! restart policy with back-off, stops them when the pod is deleted, and writes the pod's status
//! and events as it goes:
//!
//! pending → pulling → starting → running → (back-off → starting …) → terminating → terminated

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, Secret};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::{Notify, watch};
use wharf_shim::{ContainerSpec, Exit, Shim};

use crate::backoff::{Backoff, BackoffPolicy};
use crate::env::{self, Sources};
use crate::events::{Kind, Recorder};
use crate::logs::LogWriter;
use crate::node::NodeInfo;
use crate::probes::{self, ProbeUpdate, Probes};
use crate::pull::{ImagePuller, PullProgress, PullSecrets};
use crate::sandbox::{Sandbox, SandboxSpec};
use crate::status::{self, ContainerView, PodView, State};
use crate::{linux, volumes};

/// How often a running image pull reports its progress as an event.
const PULL_REPORT: Duration = Duration::from_secs(2);
/// Largest size of one container log file before it rotates.
const LOG_MAX: u64 = 10 * 1024 * 1024;

/// Shared by every pod worker of the agent.
pub struct Context {
    pub client: kube::Client,
    pub node: NodeInfo,
    pub data_dir: PathBuf,
    pub shims: Vec<Arc<dyn Shim>>,
    pub images: Arc<dyn ImagePuller>,
    pub backoff: BackoffPolicy,
    pub events: Recorder,
    pub logs: Arc<LogIndex>,
    /// Running containers by pod and name, for `kubectl exec`.
    pub running: Arc<crate::exec::RunningContainers>,
    /// Most processes one Linux container may hold (0: no limit).
    pub pids_limit: i64,
    /// The node's pod network (pods other than hostNetwork ones wait for it).
    pub network: crate::network::NetworkHandle,
    /// The cluster's DNS domain, for pods' search paths.
    pub cluster_domain: String,
}

/// A pod's containers on this node: container → (current attempt, still running).
type PodLogs = (String, BTreeMap<String, (u32, bool)>);

/// Where each pod's container logs are, for the agent's log endpoint.
#[derive(Default)]
pub struct LogIndex {
    /// (namespace, pod) → (uid, its containers)
    pods: Mutex<BTreeMap<(String, String), PodLogs>>,
    pub root: PathBuf,
}

impl LogIndex {
    pub fn new(root: PathBuf) -> Self {
        Self { pods: Mutex::default(), root }
    }

    fn dir(&self, namespace: &str, pod: &str, uid: &str) -> PathBuf {
        self.root.join(format!("{namespace}_{pod}_{uid}"))
    }

    fn set(&self, namespace: &str, pod: &str, uid: &str, container: &str, attempt: u32, running: bool) {
        let mut pods = self.pods.lock().expect("log index lock");
        let entry = pods.entry((namespace.into(), pod.into())).or_insert_with(|| (uid.into(), BTreeMap::new()));
        if entry.0 != uid {
            *entry = (uid.into(), BTreeMap::new());
        }
        entry.1.insert(container.into(), (attempt, running));
    }

    /// The log file of a container's current (or previous) attempt, and whether it still runs.
    pub fn locate(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Result<(PathBuf, bool), String> {
        let pods = self.pods.lock().expect("log index lock");
        let (uid, containers) = pods
            .get(&(namespace.into(), pod.into()))
            .ok_or_else(|| format!("pod {namespace}/{pod} has no logs on this node"))?;
        let name = match container {
            Some(c) => c.to_string(),
            None if containers.len() == 1 => containers.keys().next().expect("one container").clone(),
            None => {
                let names: Vec<&str> = containers.keys().map(String::as_str).collect();
                return Err(format!(
                    "a container name must be specified for pod {pod}, choose one of: [{}]",
                    names.join(" ")
                ));
            }
        };
        let (attempt, running) =
            containers.get(&name).ok_or_else(|| format!("container {name} is not valid for pod {pod}"))?;
        if previous {
            if *attempt == 0 {
                return Err(format!("previous terminated container \"{name}\" in pod \"{pod}\" not found"));
            }
            return Ok((self.dir(namespace, pod, uid).join(&name).join(format!("{}.log", attempt - 1)), false));
        }
        Ok((self.dir(namespace, pod, uid).join(&name).join(format!("{attempt}.log")), *running))
    }

    pub fn forget(&self, namespace: &str, pod: &str) {
        self.pods.lock().expect("log index lock").remove(&(namespace.into(), pod.into()));
    }
}

/// The state one pod worker shares with its container supervisors.
struct PodRun {
    ctx: Arc<Context>,
    pod: Arc<Pod>,
    view: Mutex<PodView>,
    dirty: Notify,
    /// Turns true when the pod is deleted or the node ends it ([`crate::eviction`]).
    stop: watch::Receiver<bool>,
    /// Why the node ended the pod itself, once it has.
    verdict: Mutex<Option<crate::eviction::Verdict>>,
    volumes: Mutex<Vec<(String, PathBuf)>>,
    /// Made before any container of a pod on the pod network, else for the first Linux one.
    sandbox: tokio::sync::OnceCell<Sandbox>,
    /// Statuses of containers a previous agent started and reported running, by name: the
    /// ones still running are adopted instead of started again.
    adoptable: Mutex<BTreeMap<String, ContainerStatus>>,
}

/// Why a running container stopped being watched.
enum Ended {
    Exited(Exit),
    PodStopping,
    /// A liveness or startup probe gave up on it.
    Unhealthy(probes::Verdict),
}

/// A started (or adopted) container attempt.
struct Launched {
    shim: Arc<dyn Shim>,
    container: Arc<dyn wharf_shim::Container>,
    log: Arc<LogWriter>,
    id: String,
    started_at: Timestamp,
    image_id: String,
    attempt: u32,
}

#[derive(Clone, Copy)]
enum Slot {
    Init(usize),
    App(usize),
}

fn name_of(pod: &Pod) -> (String, String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

impl PodRun {
    fn update(&self, slot: Slot, change: impl FnOnce(&mut ContainerView)) {
        {
            let mut view = self.view.lock().expect("pod view lock");
            let c = match slot {
                Slot::Init(i) => &mut view.init[i],
                Slot::App(i) => &mut view.app[i],
            };
            change(c);
        }
        self.dirty.notify_one();
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps for `delay`, returning early (false) if the pod is being stopped.
    async fn pause(&self, delay: Duration) -> bool {
        let mut stop = self.stop.clone();
        let slept = tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = stop.wait_for(|s| *s) => false,
        };
        slept && !self.stopping()
    }

    fn event(&self, container: Option<&str>, kind: Kind, reason: &str, message: &str) {
        self.ctx.events.record(&self.pod, container, kind, reason, message);
    }

    /// The pull secrets of the pod, as `.dockerconfigjson` documents.
    async fn pull_secrets(&self) -> PullSecrets {
        let (namespace, _, _) = name_of(&self.pod);
        let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &namespace);
        let mut out = Vec::new();
        for reference in self.pod.spec.as_ref().and_then(|s| s.image_pull_secrets.as_ref()).into_iter().flatten() {
            if let Ok(Some(secret)) = api.get_opt(&reference.name).await
                && let Some(doc) = secret.data.as_ref().and_then(|d| d.get(".dockerconfigjson"))
                && let Ok(value) = serde_json::from_slice(&doc.0)
            {
                out.push(value);
            }
        }
        out
    }

    /// The shim for a container, as [`choose_runtime`] decides.
    async fn shim_for(&self, image_runtime: &str) -> Result<Arc<dyn Shim>, String> {
        let handler = match self.pod.spec.as_ref().and_then(|s| s.runtime_class_name.clone()) {
            Some(class) => {
                let api: Api<RuntimeClass> = Api::all(self.ctx.client.clone());
                match api.get_opt(&class).await {
                    Ok(Some(rc)) => Some(rc.handler),
                    Ok(None) => return Err(format!("RuntimeClass {class:?} not found")),
                    Err(e) => return Err(format!("reading RuntimeClass {class:?}: {e}")),
                }
            }
            None => None,
        };
        let wanted = choose_runtime(handler.as_deref(), image_runtime);
        self.ctx
            .shims
            .iter()
            .find(|s| s.name() == wanted)
            .cloned()
            .ok_or_else(|| format!("runtime handler {wanted:?} is not available on node {}", self.ctx.node.name))
    }

    /// Gives a pod on the pod network its address and its sandbox with `eth0` on the node's
    /// bridge, waiting (with a container waiting message and an event) while the node network
    /// is not up. False if the pod is stopped first.
    async fn connect(&self) -> bool {
        if host_network(&self.pod) {
            return true;
        }
        let uid = name_of(&self.pod).2;
        let mut network = self.ctx.network.clone();
        let mut backoff = Backoff::default();
        let mut told: Option<String> = None;
        loop {
            if self.stopping() {
                return false;
            }
            let net = match network.current() {
                Ok(net) => net,
                Err(why) => {
                    let message = format!("network is not ready: {why}");
                    if told.as_deref() != Some(message.as_str()) {
                        self.waiting_for_sandbox(&message);
                        self.event(None, Kind::Warning, "NetworkNotReady", &message);
                        told = Some(message);
                    }
                    let mut stop = self.stop.clone();
                    tokio::select! {
                        _ = network.changed() => {}
                        _ = stop.wait_for(|s| *s) => {}
                    }
                    continue;
                }
            };
            let started = Instant::now();
            match self.attach(&net, &uid).await {
                Ok(ip) => {
                    tracing::debug!(pod = %uid, %ip, network_ms = started.elapsed().as_secs_f64() * 1e3, "pod network ready");
                    if told.is_some() {
                        self.waiting_for_sandbox("");
                    }
                    return true;
                }
                Err(e) => {
                    let message = format!("Failed to create pod sandbox: {e}");
                    if told.as_deref() != Some(message.as_str()) {
                        self.waiting_for_sandbox(&message);
                        self.event(None, Kind::Warning, "FailedCreatePodSandBox", &message);
                        told = Some(message);
                    }
                    if !self.pause(backoff.next_delay(&self.ctx.backoff, Duration::ZERO)).await {
                        return false;
                    }
                }
            }
        }
    }

    /// The pod's address, sandbox and `eth0`.
    async fn attach(&self, net: &crate::network::NodeNetwork, uid: &str) -> Result<std::net::Ipv4Addr, String> {
        let ip = net.allocate(uid)?;
        let sandbox = self.sandbox_for(&ip.to_string(), Some(net.gateway.to_string())).await?;
        let netns = sandbox.netns().ok_or("the pod sandbox has no network namespace")?;
        net.attach(ip, netns).await?;
        self.view.lock().expect("pod view lock").pod_ip = ip.to_string();
        self.dirty.notify_one();
        Ok(ip)
    }

    /// Says why the pod's containers wait for its sandbox (an empty message: they no longer do).
    fn waiting_for_sandbox(&self, message: &str) {
        let message = (!message.is_empty()).then(|| message.to_string());
        let (has_init, count) = {
            let view = self.view.lock().expect("pod view lock");
            if view.init.is_empty() { (false, view.app.len()) } else { (true, 1) }
        };
        for i in 0..count {
            let slot = if has_init { Slot::Init(i) } else { Slot::App(i) };
            self.update(slot, |c| c.state = State::waiting("ContainerCreating", message.clone()));
        }
    }

    /// The pod's address as status reports it.
    fn pod_ip(&self) -> String {
        self.view.lock().expect("pod view lock").pod_ip.clone()
    }

    /// The pod's sandbox, made on first use.
    async fn sandbox(&self) -> Result<&Sandbox, String> {
        let nameserver = self.ctx.network.current().ok().map(|n| n.gateway.to_string());
        self.sandbox_for(&self.pod_ip(), nameserver).await
    }

    /// The pod's sandbox, made on first use for a pod with address `pod_ip` whose cluster DNS
    /// server is `nameserver`.
    async fn sandbox_for(&self, pod_ip: &str, nameserver: Option<String>) -> Result<&Sandbox, String> {
        self.sandbox
            .get_or_try_init(|| async {
                let spec = sandbox_spec(&self.pod, pod_ip, &self.ctx.cluster_domain, nameserver);
                let dir = crate::sandbox::dir(&self.ctx.data_dir, &name_of(&self.pod).2);
                tokio::task::spawn_blocking(move || Sandbox::ensure(&dir, &spec))
                    .await
                    .map_err(|e| format!("pod sandbox: {e}"))?
                    .map_err(|e| e.to_string())
            })
            .await
    }

    /// Runs one container until it is done for good; true if it ended successfully.
    async fn supervise(&self, slot: Slot, spec: &Container) -> bool {
        let (namespace, pod_name, uid) = name_of(&self.pod);
        let name = spec.name.as_str();
        let policy = match slot {
            Slot::Init(_) if self.view.lock().expect("pod view lock").restart_policy == "Never" => "Never".to_string(),
            Slot::Init(_) => "OnFailure".to_string(),
            Slot::App(_) => self.view.lock().expect("pod view lock").restart_policy.clone(),
        };
        let mut backoff = Backoff::default();
        let pod_ref = format!("{pod_name}_{namespace}({uid})");
        loop {
            if self.stopping() {
                return false;
            }
            let launched = match self.adopt(slot, spec).await {
                Some(adopted) => adopted,
                None => match self.launch(slot, spec, &mut backoff).await {
                    Some(launched) => launched,
                    None if self.stopping() => return false,
                    None => continue,
                },
            };
            let Launched { shim, container, log, id, started_at, image_id, attempt } = launched;
            self.ctx.running.insert(&namespace, &pod_name, name, container.clone());
            let started = Instant::now();
            let container_id = format!("{}://{id}", shim.name());
            let is_app = matches!(slot, Slot::App(_));
            self.update(slot, |c| {
                c.image_id = image_id.clone();
                c.container_id = container_id.clone();
                c.state = State::Running { started_at };
                c.started = !is_app;
                c.ready = false;
            });

            // Run until it ends, the pod stops, or a liveness or startup probe gives up on it.
            let (updates_tx, mut updates) = tokio::sync::mpsc::unbounded_channel();
            // Linux containers and Wasm guests allowed sockets listen in the pod's network
            // namespace; other Wasm guests have no network of their own (the host's loopback).
            let in_pod = shim.name() == "youki" || crate::sockets::wasi_sockets_allowed(&self.pod, spec);
            let netns = self.sandbox.get().filter(|_| in_pod).and_then(|s| s.netns()).map(Path::to_path_buf);
            let target = probes::Target {
                container: container.clone(),
                name: name.to_string(),
                pod_ip: if in_pod { self.pod_ip() } else { "127.0.0.1".into() },
                netns,
                restarts: policy != "Never",
            };
            let probing = async {
                if is_app {
                    probes::run(Probes::new(spec), target, move |u| drop(updates_tx.send(u))).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::pin!(probing);
            let mut stop = self.stop.clone();
            let ended = loop {
                tokio::select! {
                    exit = container.wait() => break Ended::Exited(exit),
                    _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => break Ended::PodStopping,
                    verdict = &mut probing => break Ended::Unhealthy(verdict),
                    Some(update) = updates.recv() => self.probed(slot, name, update),
                }
            };
            let (exit, stopped, unhealthy) = match ended {
                Ended::Exited(exit) => (exit, false, false),
                Ended::PodStopping => {
                    self.event(Some(name), Kind::Normal, "Killing", &format!("Stopping container {name}"));
                    (container.stop(self.grace()).await, true, false)
                }
                Ended::Unhealthy(verdict) => {
                    while let Ok(update) = updates.try_recv() {
                        self.probed(slot, name, update);
                    }
                    (container.stop(verdict.grace.unwrap_or_else(|| self.grace())).await, false, true)
                }
            };
            log.flush();
            self.ctx.logs.set(&namespace, &pod_name, &uid, name, attempt, false);
            self.ctx.running.remove(&namespace, &pod_name, name, container.id());
            if let Err(e) = shim.remove(&id).await {
                tracing::warn!(container = %id, error = %e, "cannot remove the container");
            }
            let (exit_code, reason, message) = match exit {
                Exit::Code(0) => (0, "Completed", None),
                Exit::Code(code) => (code, "Error", None),
                Exit::Killed { signal } => (128 + signal, "Error", None),
                Exit::OutOfMemory => {
                    (137, "OOMKilled", Some("the container used more memory than its limit".to_string()))
                }
                Exit::Failed { code, message } => (code, "Error", Some(message)),
            };
            let terminated = State::Terminated {
                exit_code,
                reason: reason.into(),
                message: message.clone(),
                started_at,
                finished_at: Timestamp::now(),
            };
            self.update(slot, |c| {
                c.state = terminated.clone();
                c.ready = false;
            });
            if stopped {
                return false;
            }
            if exit_code != 0 {
                let detail = message.unwrap_or_else(|| format!("exit code {exit_code}"));
                self.event(
                    Some(name),
                    Kind::Warning,
                    "Failed",
                    &format!("Container {name} failed ({reason}): {detail}"),
                );
            }
            // A container killed for failing its probes restarts unless the policy is Never.
            let restart = if unhealthy {
                policy != "Never"
            } else {
                status::restarts(&policy, exit_code, matches!(slot, Slot::Init(_)))
            };
            if !restart {
                return exit_code == 0;
            }
            let delay = backoff.next_delay(&self.ctx.backoff, started.elapsed());
            let wait = format!("back-off {} restarting failed container={name} pod={pod_ref}", human(delay));
            self.update(slot, |c| {
                c.last_state = Some(terminated.clone());
                c.restart_count += 1;
                c.state = State::waiting("CrashLoopBackOff", Some(wait.clone()));
            });
            self.event(
                Some(name),
                Kind::Warning,
                "BackOff",
                &format!("Back-off restarting failed container {name} in pod {pod_ref}"),
            );
            if !self.pause(delay).await {
                return false;
            }
        }
    }

    /// Pulls, prepares and starts a new attempt of the container. `None` after a failure (its
    /// back-off already waited) or when the pod is stopping.
    async fn launch(&self, slot: Slot, spec: &Container, backoff: &mut Backoff) -> Option<Launched> {
        let (namespace, pod_name, uid) = name_of(&self.pod);
        let name = spec.name.as_str();
        let image = spec.image.clone().unwrap_or_default();
        let pull_policy = spec.image_pull_policy.clone().unwrap_or_else(|| "IfNotPresent".into());
        // Pull.
        self.update(slot, |c| c.state = State::waiting("ContainerCreating", None));
        self.event(Some(name), Kind::Normal, "Pulling", &format!("Pulling image \"{image}\""));
        let started_pull = Instant::now();
        let secrets = self.pull_secrets().await;
        let artifact = match self.pull_reporting_progress(name, &image, &pull_policy, &secrets).await {
            Ok(artifact) => artifact,
            Err(e) => {
                let message = format!("Failed to pull image \"{image}\": {e}");
                self.update(slot, |c| c.state = State::waiting("ErrImagePull", Some(message.clone())));
                self.event(Some(name), Kind::Warning, "Failed", &message);
                let delay = backoff.next_delay(&self.ctx.backoff, Duration::ZERO);
                let back_off = format!("Back-off pulling image \"{image}\"");
                self.update(slot, |c| c.state = State::waiting("ImagePullBackOff", Some(back_off.clone())));
                self.event(Some(name), Kind::Normal, "BackOff", &back_off);
                self.pause(delay).await;
                return None;
            }
        };
        self.event(
            Some(name),
            Kind::Normal,
            "Pulled",
            &format!("Successfully pulled image \"{image}\" in {}ms", started_pull.elapsed().as_millis()),
        );

        let pulled = started_pull.elapsed();

        // Prepare.
        let started_prepare = Instant::now();
        let prepared = self.prepare(spec, &artifact).await;
        let (shim, container_spec, log) = match prepared {
            Ok(p) => p,
            Err((reason, message)) => {
                self.update(slot, |c| c.state = State::waiting(reason, Some(message.clone())));
                self.event(Some(name), Kind::Warning, "Failed", &format!("Error: {message}"));
                let delay = backoff.next_delay(&self.ctx.backoff, Duration::ZERO);
                self.pause(delay).await;
                return None;
            }
        };
        let attempt = self.attempt(slot);
        self.ctx.logs.set(&namespace, &pod_name, &uid, name, attempt, true);

        // Start.
        let prepared = started_prepare.elapsed();
        let started_start = Instant::now();
        let id = container_spec.id.clone();
        let container = match shim.start(container_spec).await {
            Ok(container) => container,
            Err(e) => {
                let message = e.to_string();
                self.ctx.logs.set(&namespace, &pod_name, &uid, name, attempt, false);
                self.update(slot, |c| c.state = State::waiting("CreateContainerError", Some(message.clone())));
                self.event(Some(name), Kind::Warning, "Failed", &format!("Error: {message}"));
                let delay = backoff.next_delay(&self.ctx.backoff, Duration::ZERO);
                self.pause(delay).await;
                return None;
            }
        };
        tracing::debug!(
            pod = %pod_name,
            container = name,
            runtime = shim.name(),
            pull_ms = pulled.as_secs_f64() * 1e3,
            prepare_ms = prepared.as_secs_f64() * 1e3,
            start_ms = started_start.elapsed().as_secs_f64() * 1e3,
            "container started"
        );
        self.event(Some(name), Kind::Normal, "Created", &format!("Created container {name}"));
        self.event(Some(name), Kind::Normal, "Started", &format!("Started container {name}"));
        Some(Launched {
            shim,
            container,
            log,
            id,
            started_at: Timestamp::now(),
            image_id: artifact.image_id.clone(),
            attempt,
        })
    }

    /// Takes over the container a previous agent started for this slot, if it still runs.
    async fn adopt(&self, slot: Slot, spec: &Container) -> Option<Launched> {
        let status = self.adoptable.lock().expect("adoptable lock").remove(&spec.name)?;
        let (namespace, pod_name, uid) = name_of(&self.pod);
        let (runtime, id) = status.container_id.as_deref()?.split_once("://")?;
        let shim = self.ctx.shims.iter().find(|s| s.name() == runtime)?.clone();
        let attempt = self.attempt(slot);
        let log_path = self.ctx.logs.dir(&namespace, &pod_name, &uid).join(&spec.name).join(format!("{attempt}.log"));
        let adopted = async {
            let log = Arc::new(LogWriter::create(log_path, LOG_MAX).ok()?);
            if shim.name() == "youki" {
                // The namespaces a previous agent made: network probes connect inside them.
                self.sandbox().await.ok()?;
            }
            Some((shim.adopt(id, log.clone()).await?, log))
        };
        let Some((container, log)) = adopted.await else {
            // Not running any more (or not reachable): what is left of it goes, a new one starts,
            // counted as a restart.
            if let Err(e) = shim.remove(id).await {
                tracing::warn!(container = %id, error = %e, "cannot remove a container that was not adopted");
            }
            self.update(slot, |c| lost(c, &status));
            return None;
        };
        self.ctx.logs.set(&namespace, &pod_name, &uid, &spec.name, attempt, true);
        let started_at = status
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref())
            .map_or_else(Timestamp::now, |t| t.0);
        tracing::info!(pod = %pod_name, container = %spec.name, id, "adopted a running container");
        Some(Launched { shim, container, log, id: id.to_string(), started_at, image_id: status.image_id, attempt })
    }

    /// Pulls the image; while a download lasts, a `Pulling` event every few seconds says how
    /// far it has got.
    async fn pull_reporting_progress(
        &self,
        name: &str,
        image: &str,
        policy: &str,
        secrets: &PullSecrets,
    ) -> Result<crate::pull::Artifact, crate::pull::PullError> {
        let (progress, mut seen) = watch::channel(PullProgress::default());
        let pull = self.ctx.images.pull(image, policy, secrets, Some(&progress));
        tokio::pin!(pull);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + PULL_REPORT, PULL_REPORT);
        loop {
            tokio::select! {
                pulled = &mut pull => return pulled,
                _ = ticks.tick() => {
                    if !seen.has_changed().unwrap_or(false) {
                        continue;
                    }
                    let p = *seen.borrow_and_update();
                    let message = format!(
                        "Pulling image \"{image}\": {}/{} layers, {} of {}",
                        p.layers_done,
                        p.layers_total,
                        megabytes(p.bytes_done),
                        megabytes(p.bytes_total)
                    );
                    self.event(Some(name), Kind::Normal, "Pulling", &message);
                }
            }
        }
    }

    /// Applies what probing says about a running container.
    fn probed(&self, slot: Slot, name: &str, update: ProbeUpdate) {
        match update {
            ProbeUpdate::Started(started) => self.update(slot, |c| c.started = started),
            ProbeUpdate::Ready(ready) => self.update(slot, |c| c.ready = ready),
            ProbeUpdate::Event { kind, reason, message } => self.event(Some(name), kind, reason, &message),
        }
    }

    fn attempt(&self, slot: Slot) -> u32 {
        let view = self.view.lock().expect("pod view lock");
        let c = match slot {
            Slot::Init(i) => &view.init[i],
            Slot::App(i) => &view.app[i],
        };
        c.restart_count as u32
    }

    /// The node ends the pod ([`crate::eviction`]): an event says why now, the containers are
    /// stopped (the caller halts them), and once they are the pod fails with the verdict's
    /// reason and message ([`PodRun::failed_by_node`]).
    fn fail(&self, verdict: crate::eviction::Verdict) {
        tracing::info!(pod = %name_of(&self.pod).1, reason = verdict.reason, message = %verdict.message, "ending the pod");
        self.event(None, Kind::Warning, verdict.reason, &verdict.message);
        *self.verdict.lock().expect("verdict lock") = Some(verdict);
    }

    /// Once the containers have stopped: the pod's failure, if the node ended it.
    fn failed_by_node(&self) {
        if let Some(verdict) = self.verdict.lock().expect("verdict lock").as_ref() {
            self.view.lock().expect("pod view lock").failure = Some((verdict.reason.into(), verdict.message.clone()));
        }
    }

    fn grace(&self) -> Duration {
        if let Some(grace) = self.verdict.lock().expect("verdict lock").as_ref().and_then(|v| v.grace) {
            return grace;
        }
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or(self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        Duration::from_secs(seconds.max(0) as u64)
    }

    /// Builds what the shim needs: environment, mounts, argv and the log sink.
    async fn prepare(
        &self,
        spec: &Container,
        artifact: &crate::pull::Artifact,
    ) -> Result<(Arc<dyn Shim>, ContainerSpec, Arc<LogWriter>), (&'static str, String)> {
        let (namespace, pod_name, uid) = name_of(&self.pod);
        let shim = self.shim_for(artifact.runtime).await.map_err(|m| ("CreateContainerError", m))?;
        let sources = Sources::new(&self.ctx.client, &namespace);
        // The downward API's status.podIP is the address this agent gave the pod.
        let mut pod = (*self.pod).clone();
        pod.status.get_or_insert_default().pod_ip = Some(self.pod_ip()).filter(|ip| !ip.is_empty());
        let mut env = env::resolve(&pod, spec, &sources).await.map_err(|e| ("CreateContainerConfigError", e.0))?;
        env.sort_by(|a, b| a.0.cmp(&b.0));
        let volumes = self.volumes.lock().expect("volumes lock").clone();
        let mut mounts = volumes::mounts(&self.pod, spec, &volumes).map_err(|e| ("CreateContainerConfigError", e.0))?;
        let mut linux = wharf_shim::LinuxSpec::default();
        if shim.name() == "youki" {
            let started = Instant::now();
            let sandbox = self.sandbox().await.map_err(|m| ("CreateContainerError", m))?;
            tracing::debug!(pod = %pod_name, sandbox_ms = started.elapsed().as_secs_f64() * 1e3, "pod sandbox ready");
            for file in &sandbox.files {
                if !mounts.iter().any(|m| m.guest_path == file.guest_path) {
                    mounts.push(file.clone());
                }
            }
            let seccomp_dir = self.ctx.data_dir.join("seccomp");
            linux = linux::linux_spec(&self.pod, spec, artifact.config.user.clone(), &seccomp_dir, self.ctx.pids_limit)
                .map_err(|m| ("CreateContainerConfigError", m))?;
            linux.layers = artifact.layers.clone();
            linux.namespaces = sandbox.namespaces.clone();
            linux.hostname = pod_name.clone();
            for (key, value) in artifact.config.env.iter().rev() {
                if !env.iter().any(|(k, _)| k == key) {
                    env.insert(0, (key.clone(), value.clone()));
                }
            }
        }
        let working_dir = spec.working_dir.clone().or_else(|| artifact.config.working_dir.clone());
        let args = argv(spec, &artifact.config);
        let attempt = self.attempt_for(spec);
        let log_path = self.ctx.logs.dir(&namespace, &pod_name, &uid).join(&spec.name).join(format!("{attempt}.log"));
        let log = Arc::new(
            LogWriter::create(log_path, LOG_MAX).map_err(|e| ("CreateContainerError", format!("log file: {e}")))?,
        );
        let limits = spec.resources.as_ref().and_then(|r| r.limits.as_ref());
        let memory_limit = limits.and_then(|l| l.get("memory")).and_then(|q| quantity_bytes(&q.0));
        let cpu_limit_millis = limits.and_then(|l| l.get("cpu")).and_then(|q| quantity_millis(&q.0));
        // Wasm guests allowed sockets run inside the pod's network namespace (WASOCK).
        let network = if shim.name() == "wasmtime" && crate::sockets::wasi_sockets_allowed(&self.pod, spec) {
            self.sandbox().await.map_err(|m| ("CreateContainerError", m))?.netns().map(Path::to_path_buf)
        } else {
            None
        };
        let container_spec = ContainerSpec {
            id: format!("{uid}-{}-{attempt}", spec.name),
            artifact: artifact.path.clone(),
            digest: artifact.digest.clone(),
            args,
            env,
            working_dir,
            mounts,
            memory_limit,
            cpu_limit_millis,
            log: log.clone(),
            network,
            linux,
        };
        Ok((shim, container_spec, log))
    }

    fn attempt_for(&self, spec: &Container) -> u32 {
        let view = self.view.lock().expect("pod view lock");
        view.init
            .iter()
            .chain(view.app.iter())
            .find(|c| c.name == spec.name)
            .map(|c| c.restart_count as u32)
            .unwrap_or(0)
    }

    async fn write_status(&self) {
        let (namespace, name, _) = name_of(&self.pod);
        let status = status::pod_status(&self.view.lock().expect("pod view lock"));
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &namespace);
        if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await
        {
            tracing::debug!(pod = %name, error = %e, "pod status update failed");
        }
    }
}

/// The runtime a container runs on (DESIGN.md, "Runtime selection"): the pod's RuntimeClass
/// handler when it names one, else what the image's content calls for.
pub fn choose_runtime<'a>(runtime_class_handler: Option<&'a str>, image_runtime: &'a str) -> &'a str {
    runtime_class_handler.unwrap_or(image_runtime)
}

/// Whether the pod uses the node's network namespace (`spec.hostNetwork`).
fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
}

/// How the pod's sandbox is made, from its spec and the agent's DNS server and domain.
fn sandbox_spec(pod: &Pod, pod_ip: &str, cluster_domain: &str, nameserver: Option<String>) -> SandboxSpec {
    let spec = pod.spec.clone().unwrap_or_default();
    SandboxSpec {
        hostname: spec.hostname.clone().unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default()),
        pod_ip: pod_ip.to_string(),
        host_network: spec.host_network.unwrap_or(false),
        namespace: pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        cluster_domain: cluster_domain.to_string(),
        nameserver,
        dns_policy: spec.dns_policy.clone(),
        dns_config: spec.dns_config.clone(),
        host_aliases: spec
            .host_aliases
            .iter()
            .flatten()
            .map(|a| (a.ip.clone(), a.hostnames.clone().unwrap_or_default()))
            .collect(),
    }
}

/// The container's argv with Kubernetes' semantics: `command` replaces the image's ENTRYPOINT and
/// `args` its CMD; a `command` alone drops CMD. Wasm artifacts have no config: their argv[0] is
/// the container's name.
fn argv(spec: &Container, image: &crate::pull::ImageConfig) -> Vec<String> {
    let command = spec.command.as_deref().filter(|c| !c.is_empty());
    let (head, tail) = match command {
        Some(command) => (command, spec.args.as_deref().unwrap_or_default()),
        None => (image.entrypoint.as_slice(), spec.args.as_deref().unwrap_or(&image.cmd)),
    };
    let mut argv: Vec<String> = head.iter().chain(tail).cloned().collect();
    if command.is_none() && image.entrypoint.is_empty() && image.cmd.is_empty() {
        argv.insert(0, spec.name.clone());
    }
    argv
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// A back-off delay as the kubelet prints it (`10s`, `5m0s`), in milliseconds below a second.
fn human(delay: Duration) -> String {
    match delay.as_secs() {
        0 => format!("{}ms", delay.as_millis()),
        s if s < 60 => format!("{s}s"),
        s => format!("{}m{}s", s / 60, s % 60),
    }
}

/// A Kubernetes memory quantity in bytes (`128Mi`, `1G`, `1048576`).
pub fn quantity_bytes(q: &str) -> Option<u64> {
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "m" => 1e-3,
        _ => return None,
    };
    Some((number * factor).ceil() as u64)
}

/// A Kubernetes CPU quantity in millicores (`500m`, `2`).
pub fn quantity_millis(q: &str) -> Option<u64> {
    match q.strip_suffix('m') {
        Some(m) => m.parse().ok(),
        None => q.parse::<f64>().ok().map(|c| (c * 1000.0).ceil() as u64),
    }
}

/// The app containers a previous agent reported running whose runtime still holds them; every
/// other container of this pod the runtimes hold is removed (it ended, or was replaced).
async fn adoptable_containers(ctx: &Context, pod: &Pod) -> BTreeMap<String, ContainerStatus> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut adoptable = BTreeMap::new();
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    for shim in &ctx.shims {
        for id in shim.existing().into_iter().filter(|id| id.starts_with(&uid)) {
            let claimed = statuses.iter().find(|s| {
                s.state.as_ref().is_some_and(|st| st.running.is_some())
                    && s.container_id.as_deref() == Some(&format!("{}://{id}", shim.name()))
            });
            match claimed {
                Some(status) => {
                    adoptable.insert(status.name.clone(), status.clone());
                }
                None => {
                    if let Err(e) = shim.remove(&id).await {
                        tracing::warn!(container = %id, error = %e, "cannot remove a container left behind");
                    }
                }
            }
        }
    }
    adoptable
}

/// Counts a container the previous agent reported running, and that is gone now, as one that
/// ended — as the kubelet reports a container it finds gone after a restart: `lastState`
/// terminated with reason `Unknown` and exit code 255, one more restart.
fn lost(c: &mut ContainerView, previous: &ContainerStatus) {
    let now = Timestamp::now();
    let started_at = previous.state.as_ref().and_then(|s| s.running.as_ref()).and_then(|r| r.started_at.as_ref());
    c.last_state = Some(State::Terminated {
        exit_code: 255,
        reason: "Unknown".into(),
        message: Some("The container could not be located when the node agent restarted".into()),
        started_at: started_at.map_or(now, |t| t.0),
        finished_at: now,
    });
    c.restart_count += 1;
}

/// Runs one pod to completion or until `stop` turns true, then (if stopped) deletes the pod
/// object so the API server can let it go.
pub async fn run_pod(ctx: Arc<Context>, pod: Arc<Pod>, stop: watch::Receiver<bool>) {
    let (namespace, pod_name, uid) = name_of(&pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let previous: BTreeMap<String, i32> = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| (c.name.clone(), c.restart_count))
        .collect();
    let mut view = PodView {
        restart_policy: spec.restart_policy.clone().unwrap_or_else(|| "Always".into()),
        init: spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| ContainerView::new(&c.name, c.image.as_deref().unwrap_or_default()))
            .collect(),
        app: spec
            .containers
            .iter()
            .map(|c| {
                let mut view = ContainerView::new(&c.name, c.image.as_deref().unwrap_or_default());
                view.restart_count = previous.get(&c.name).copied().unwrap_or(0);
                if spec.init_containers.as_ref().is_some_and(|i| !i.is_empty()) {
                    view.state = State::waiting("PodInitializing", None);
                }
                view
            })
            .collect(),
        start_time: Timestamp::now(),
        host_ip: ctx.node.address.clone(),
        // A pod on the pod network reports its address once it has one.
        pod_ip: if host_network(&pod) { ctx.node.address.clone() } else { String::new() },
        failure: None,
    };
    let adoptable = adoptable_containers(&ctx, &pod).await;
    // App containers a previous agent reported running that no runtime holds any more (a Wasm
    // guest runs inside the agent, so it died with it): the one started now is a restart.
    for status in pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).into_iter().flatten() {
        let was_running = status.state.as_ref().is_some_and(|s| s.running.is_some());
        if was_running
            && !adoptable.contains_key(&status.name)
            && let Some(c) = view.app.iter_mut().find(|c| c.name == status.name)
        {
            lost(c, status);
        }
    }
    let (halt, halted) = watch::channel(false);
    let run = Arc::new(PodRun {
        ctx: ctx.clone(),
        pod: pod.clone(),
        view: Mutex::new(view),
        dirty: Notify::new(),
        stop: halted,
        verdict: Mutex::new(None),
        volumes: Mutex::new(Vec::new()),
        sandbox: tokio::sync::OnceCell::new(),
        adoptable: Mutex::new(adoptable),
    });

    // Status writer: coalesces changes into one write at a time.
    let writer = {
        let run = run.clone();
        tokio::spawn(async move {
            loop {
                run.dirty.notified().await;
                run.write_status().await;
            }
        })
    };
    run.dirty.notify_one();
    let volume_root = ctx.data_dir.join("pods").join(&uid).join("volumes");
    // The containers stop when the pod is deleted, or when the node ends it itself.
    let guard = {
        let (run, mut deleted, volume_root) = (run.clone(), stop.clone(), volume_root.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = deleted.wait_for(|s| *s) => {}
                verdict = crate::eviction::watch(&run.pod, volume_root) => run.fail(verdict),
            }
            halt.send_replace(true);
        })
    };
    let connected = run.connect().await;

    let mut backoff = Backoff::default();
    let prepared = if !connected {
        None
    } else {
        loop {
            let sources = Sources::new(&ctx.client, &namespace);
            match volumes::prepare_all(&pod, &volume_root, &sources).await {
                Ok(v) => break Some(v),
                Err(e) => {
                    for i in 0..spec.containers.len() {
                        run.update(Slot::App(i), |c| {
                            c.state = State::waiting("CreateContainerConfigError", Some(e.0.clone()))
                        });
                    }
                    run.event(None, Kind::Warning, "FailedMount", &e.0);
                    if !run.pause(backoff.next_delay(&volumes::MOUNT_RETRY, Duration::ZERO)).await {
                        break None;
                    }
                }
            }
        }
    };
    if let Some(volumes) = prepared {
        *run.volumes.lock().expect("volumes lock") = volumes;
        let mut initialized = true;
        // Running containers to adopt mean the pod was initialized before the agent restarted.
        let init_containers = if run.adoptable.lock().expect("adoptable lock").is_empty() {
            spec.init_containers.clone().unwrap_or_default()
        } else {
            for i in 0..spec.init_containers.as_ref().map_or(0, Vec::len) {
                let now = Timestamp::now();
                run.update(Slot::Init(i), |c| {
                    c.state = State::Terminated {
                        exit_code: 0,
                        reason: "Completed".into(),
                        message: None,
                        started_at: now,
                        finished_at: now,
                    }
                });
            }
            Vec::new()
        };
        for (i, container) in init_containers.iter().enumerate() {
            if !run.supervise(Slot::Init(i), container).await {
                initialized = false;
                if !run.stopping() {
                    run.view.lock().expect("pod view lock").failure =
                        Some(("Failed".into(), format!("init container {} failed", container.name)));
                    run.dirty.notify_one();
                }
                break;
            }
        }
        if initialized && !run.stopping() {
            let supervisors = spec.containers.iter().enumerate().map(|(i, c)| run.supervise(Slot::App(i), c));
            futures::future::join_all(supervisors).await;
        }
    }
    // Done running: a deadline or a volume's usage no longer matters.
    guard.abort();
    run.failed_by_node();
    run.write_status().await;
    // A finished pod's address is free at once (as the kubelet tears down its sandbox).
    if let Ok(net) = ctx.network.current() {
        net.detach(&uid).await;
    }
    // A finished pod waits for its deletion; a deleted one is released now.
    let mut stop = stop;
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
    writer.abort();
    // As the kubelet does, the object goes only once the node holds nothing of the pod: whoever
    // waits for the deletion may then reuse its name, volumes and address.
    ctx.logs.forget(&namespace, &pod_name);
    let data_dir = ctx.data_dir.clone();
    let pod_uid = uid.clone();
    let _ = tokio::task::spawn_blocking(move || crate::pods::remove_pod_dir(&data_dir, &pod_uid)).await;
    let _ = std::fs::remove_dir_all(ctx.logs.dir(&namespace, &pod_name, &uid));
    crate::pods::release(&ctx, &pod).await;
    ctx.events.forget(&uid);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_convert() {
        assert_eq!(quantity_bytes("128Mi"), Some(128 * 1024 * 1024));
        assert_eq!(quantity_bytes("1G"), Some(1_000_000_000));
        assert_eq!(quantity_bytes("2048"), Some(2048));
        assert_eq!(quantity_bytes("1.5Ki"), Some(1536));
        assert_eq!(quantity_millis("500m"), Some(500));
        assert_eq!(quantity_millis("2"), Some(2000));
    }

    #[test]
    fn argv_follows_kubernetes_command_and_args() {
        let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let container = |command: Option<&str>, args: Option<&str>| Container {
            name: "app".into(),
            command: command.map(words),
            args: args.map(words),
            ..Default::default()
        };
        let image = crate::pull::ImageConfig {
            entrypoint: words("/bin/entry -v"),
            cmd: words("serve --port 80"),
            ..Default::default()
        };
        assert_eq!(argv(&container(None, None), &image), words("/bin/entry -v serve --port 80"));
        assert_eq!(argv(&container(None, Some("run")), &image), words("/bin/entry -v run"));
        assert_eq!(argv(&container(Some("sh -c"), None), &image), words("sh -c"));
        assert_eq!(argv(&container(Some("sh -c"), Some("date")), &image), words("sh -c date"));
        let cmd_only = crate::pull::ImageConfig { cmd: words("sh"), ..Default::default() };
        assert_eq!(argv(&container(None, None), &cmd_only), words("sh"));
        assert_eq!(argv(&container(None, Some("echo hi")), &cmd_only), words("echo hi"));
        let wasm = crate::pull::ImageConfig::default();
        assert_eq!(argv(&container(None, Some("a b")), &wasm), words("app a b"));
        assert_eq!(argv(&container(Some("hello.wasm"), Some("x")), &wasm), words("hello.wasm x"));
    }

    #[test]
    fn back_off_delays_print_like_the_kubelet() {
        assert_eq!(human(Duration::from_secs(10)), "10s");
        assert_eq!(human(Duration::from_secs(300)), "5m0s");
        assert_eq!(human(Duration::from_millis(600)), "600ms");
    }
}
