//! Container probes with the kubelet's semantics: startup, liveness and readiness probes run
//! as exec commands inside the container, HTTP(S) GETs, TCP connects or gRPC health checks,
//! counted against their thresholds, reporting readiness and Unhealthy events as they go and
//! declaring the container dead when liveness (or startup) fails for good.
//!
//! Network probes of a container in a pod sandbox connect from inside the sandbox's network
//! namespace (a dedicated thread enters it, connects, and hands the socket back to tokio); the
//! pod's address is loopback there until pod networking lands. Containers without a namespace
//! (Wasm) are probed from the agent's own namespace. Names in `host` are resolved by the agent.
//!
//! # Wiring into the pod worker
//!
//! Right after an app container starts, build [`Probes::new`] from its spec and a [`Target`],
//! and poll [`run`] beside `container.wait()`:
//!
//! ```text
//! let target = Target { container: container.clone(), name, netns, pod_ip: "127.0.0.1".into(),
//!                       restarts: policy != "Never" };
//! let (tx, mut updates) = tokio::sync::mpsc::unbounded_channel();
//! let probing = probes::run(Probes::new(spec), target, move |u| { let _ = tx.send(u); });
//! tokio::pin!(probing);
//! loop { select! {
//!     exit = container.wait() => break exit,        // ended by itself: drop `probing`
//!     Some(u) = updates.recv() => apply(u).await,   // Started/Ready → status view, Event → recorder
//!     verdict = &mut probing => {                   // liveness or startup gave up:
//!         while let Ok(u) = updates.try_recv() { apply(u).await }   // incl. the Killing event
//!         break container.stop(verdict.grace.unwrap_or(pod_grace)).await  // then restart per policy
//!     }
//! }}
//! ```
//!
//! `run` reports `Started` and `Ready` once at the start and then on every change, so the
//! worker sets neither itself. Exec probes of a runtime without exec (Wasm) are ignored with a
//! `ProbeNotSupported` warning event, their container counting as passing them.

mod exec;
mod grpc;
mod http;
mod net;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::time::Instant;
use wharf_shim::Container;

use crate::events::Kind;

/// Most output kept from an exec probe or an HTTP response body, as the kubelet keeps.
const OUTPUT_LIMIT: usize = 10 * 1024;
/// The User-Agent the kubelet sends, for the Kubernetes version Wharf serves.
const USER_AGENT: &str = "kube-probe/1.33";
/// Same-host redirects an HTTP probe follows before failing.
const MAX_REDIRECTS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        })
    }
}

/// What a probe does. Ports are resolved against the container's named ports up front; a
/// name that resolves to nothing makes every run error (as the kubelet does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// argv run inside the container, `$(VAR)` already expanded from the container's env.
    Exec {
        command: Vec<String>,
    },
    HttpGet {
        https: bool,
        host: Option<String>,
        port: Result<u16, String>,
        path: String,
        headers: Vec<(String, String)>,
    },
    TcpSocket {
        host: Option<String>,
        port: Result<u16, String>,
    },
    /// `grpc.health.v1.Health/Check` over plaintext HTTP/2.
    Grpc {
        port: Result<u16, String>,
        service: String,
    },
    /// A probe without a handler (validation rejects these).
    Missing,
}

/// One probe with the API defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The probe's `terminationGracePeriodSeconds`: the grace of the kill it causes.
    pub termination_grace: Option<Duration>,
}

/// A container's probes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probes {
    pub startup: Option<Probe>,
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
}

impl Probes {
    pub fn new(container: &core::Container) -> Self {
        let build = |probe: &Option<core::Probe>, kind| probe.as_ref().map(|p| Probe::new(p, container, kind));
        Probes {
            startup: build(&container.startup_probe, ProbeKind::Startup),
            liveness: build(&container.liveness_probe, ProbeKind::Liveness),
            readiness: build(&container.readiness_probe, ProbeKind::Readiness),
        }
    }
}

impl Probe {
    fn new(probe: &core::Probe, container: &core::Container, kind: ProbeKind) -> Self {
        let seconds = |value: Option<i32>, default: u64| match value {
            Some(v) if v > 0 => Duration::from_secs(v as u64),
            _ => Duration::from_secs(default),
        };
        let count = |value: Option<i32>, default: u32| value.filter(|v| *v > 0).map_or(default, |v| v as u32);
        Probe {
            action: Action::new(probe, container),
            initial_delay: Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64),
            period: seconds(probe.period_seconds, 10),
            timeout: seconds(probe.timeout_seconds, 1),
            // Liveness and startup probes succeed on the first success, whatever the spec says.
            success_threshold: if kind == ProbeKind::Readiness { count(probe.success_threshold, 1) } else { 1 },
            failure_threshold: count(probe.failure_threshold, 3),
            termination_grace: match kind {
                ProbeKind::Readiness => None,
                _ => probe.termination_grace_period_seconds.map(|s| Duration::from_secs(s.max(0) as u64)),
            },
        }
    }
}

impl Action {
    fn new(probe: &core::Probe, container: &core::Container) -> Self {
        if let Some(exec) = &probe.exec {
            let env = container.env.iter().flatten();
            let vars: HashMap<&str, &str> = env.map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or(""))).collect();
            let command = exec.command.iter().flatten().map(|arg| expand(arg, &vars)).collect();
            Action::Exec { command }
        } else if let Some(get) = &probe.http_get {
            Action::HttpGet {
                https: get.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("https")),
                host: get.host.clone().filter(|h| !h.is_empty()),
                port: resolve_port(&get.port, container),
                path: get.path.clone().unwrap_or_default(),
                headers: get.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect(),
            }
        } else if let Some(tcp) = &probe.tcp_socket {
            Action::TcpSocket {
                host: tcp.host.clone().filter(|h| !h.is_empty()),
                port: resolve_port(&tcp.port, container),
            }
        } else if let Some(grpc) = &probe.grpc {
            Action::Grpc { port: port_number(grpc.port), service: grpc.service.clone().unwrap_or_default() }
        } else {
            Action::Missing
        }
    }
}

/// A port by number, or by the name of one of the container's ports (or a number in a string).
fn resolve_port(port: &IntOrString, container: &core::Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => port_number(*n),
        IntOrString::String(name) => {
            let named = container.ports.iter().flatten().find(|p| p.name.as_deref() == Some(name.as_str()));
            match (named, name.parse::<i32>()) {
                (Some(p), _) => port_number(p.container_port),
                (None, Ok(n)) => port_number(n),
                (None, Err(_)) => Err(format!("port {name:?} not found in the container's ports")),
            }
        }
    }
}

fn port_number(n: i32) -> Result<u16, String> {
    u16::try_from(n).ok().filter(|p| *p > 0).ok_or_else(|| format!("invalid port number: {n}"))
}

/// Kubernetes' `$(VAR)` expansion: `$$` is a literal `$`, unknown variables stay as written.
fn expand(input: &str, vars: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&rest[i..i + end + 3]),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container a probe checks.
#[derive(Clone)]
pub struct Target {
    /// Exec probes run through it; its shim answering `Unsupported` (Wasm) disables them.
    pub container: Arc<dyn Container>,
    /// The container's name, for the Killing event.
    pub name: String,
    /// The pod sandbox's network namespace file: network probes connect from inside it.
    pub netns: Option<PathBuf>,
    /// Where network probes connect when they name no host: the pod's address inside `netns`,
    /// today `127.0.0.1` for every container (also those without a namespace).
    pub pod_ip: String,
    /// Whether the restart policy restarts a container that fails (`restartPolicy != Never`);
    /// only the Killing event's wording depends on it.
    pub restarts: bool,
}

/// What probing tells the worker while the container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeUpdate {
    /// The container status' `started`: false until the startup probe has passed.
    Started(bool),
    /// The container status' `ready`.
    Ready(bool),
    /// An Event about the container for the worker's recorder.
    Event { kind: Kind, reason: &'static str, message: String },
}

/// Why probing gave up on a container: it must be killed, and restarted per its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// [`ProbeKind::Liveness`] or [`ProbeKind::Startup`].
    pub probe: ProbeKind,
    /// The grace period the probe asks for; `None`: the pod's.
    pub grace: Option<Duration>,
}

/// Probes the container until a liveness or startup probe declares it dead; without either it
/// never returns. Call it right after the container started: initial delays count from then.
/// `report` is called synchronously, in order, and must not block.
pub async fn run(probes: Probes, target: Target, report: impl FnMut(ProbeUpdate) + Send) -> Verdict {
    let report = Mutex::new(report);
    let send = |update| (report.lock().expect("probe report lock"))(update);
    let start = Instant::now();
    send(ProbeUpdate::Started(probes.startup.is_none()));
    send(ProbeUpdate::Ready(probes.startup.is_none() && probes.readiness.is_none()));
    let mut since = start;
    if let Some(probe) = &probes.startup {
        let mut worker = Worker::new(ProbeKind::Startup, probe, start, start);
        loop {
            match worker.next(&target, &send).await {
                Some(true) => break,
                Some(false) => return give_up(ProbeKind::Startup, probe, &target, &send),
                None => {}
            }
        }
        send(ProbeUpdate::Started(true));
        if probes.readiness.is_none() {
            send(ProbeUpdate::Ready(true));
        }
        since = Instant::now();
    }
    let liveness = async {
        let Some(probe) = &probes.liveness else { return std::future::pending().await };
        let mut worker = Worker::new(ProbeKind::Liveness, probe, start, since);
        loop {
            if worker.next(&target, &send).await == Some(false) {
                return give_up(ProbeKind::Liveness, probe, &target, &send);
            }
        }
    };
    let readiness = async {
        let Some(probe) = &probes.readiness else { return std::future::pending().await };
        let mut worker = Worker::new(ProbeKind::Readiness, probe, start, since);
        let mut ready = false;
        loop {
            if let Some(result) = worker.next(&target, &send).await
                && result != ready
            {
                ready = result;
                send(ProbeUpdate::Ready(ready));
            }
        }
    };
    tokio::select! {
        verdict = liveness => verdict,
        verdict = readiness => verdict,
    }
}

fn give_up(kind: ProbeKind, probe: &Probe, target: &Target, send: &impl Fn(ProbeUpdate)) -> Verdict {
    let what = if kind == ProbeKind::Startup { "startup" } else { "liveness" };
    let restart = if target.restarts { ", will be restarted" } else { "" };
    let message = format!("Container {} failed {what} probe{restart}", target.name);
    send(ProbeUpdate::Event { kind: Kind::Normal, reason: "Killing", message });
    Verdict { probe: kind, grace: probe.termination_grace }
}

/// How one run of a probe went.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Success,
    /// Counts as a success, with an event (an HTTP redirect the probe did not follow).
    Warning(String),
    Failure(String),
    /// The probe could not be run (bad port, agent-side trouble): the run does not count.
    Error(String),
    /// The runtime cannot run this probe at all (exec into a Wasm container).
    Unsupported(String),
}

async fn check(action: &Action, timeout: Duration, target: &Target) -> Outcome {
    let host = |host: &Option<String>| host.clone().unwrap_or_else(|| target.pod_ip.clone());
    let netns = target.netns.as_deref();
    match action {
        Action::Exec { command } => exec::check(target.container.as_ref(), command, timeout).await,
        Action::HttpGet { https, host: h, port, path, headers } => match port {
            Ok(port) => {
                let url = http::Url::new(*https, &host(h), *port, path);
                http::check(url, headers, netns, timeout).await
            }
            Err(e) => Outcome::Error(e.clone()),
        },
        Action::TcpSocket { host: h, port } => match port {
            Ok(port) => net::check(netns, &host(h), *port, timeout).await,
            Err(e) => Outcome::Error(e.clone()),
        },
        Action::Grpc { port, service } => match port {
            Ok(port) => grpc::check(netns, &target.pod_ip, *port, service, timeout).await,
            Err(e) => Outcome::Error(e.clone()),
        },
        Action::Missing => Outcome::Error("the probe has no handler".into()),
    }
}

/// One probe's schedule and result counting, as the kubelet's probe worker keeps them.
struct Worker<'a> {
    kind: ProbeKind,
    probe: &'a Probe,
    due: Instant,
    last: Option<bool>,
    run: u32,
    unsupported: bool,
}

impl<'a> Worker<'a> {
    /// A worker whose first run is the probe's initial delay after the container's `start`,
    /// and not before `since` (when the startup probe passed).
    fn new(kind: ProbeKind, probe: &'a Probe, start: Instant, since: Instant) -> Self {
        let due = (start + probe.initial_delay).max(since);
        Worker { kind, probe, due, last: None, run: 0, unsupported: false }
    }

    /// Waits for the next run and does it, reporting its event; returns the probe's result
    /// once as many runs in a row as its threshold agree, `None` while they do not.
    async fn next(&mut self, target: &Target, send: &impl Fn(ProbeUpdate)) -> Option<bool> {
        if self.unsupported {
            return std::future::pending().await;
        }
        tokio::time::sleep_until(self.due).await;
        let outcome = check(&self.probe.action, self.probe.timeout, target).await;
        self.due = (self.due + self.probe.period).max(Instant::now());
        let event = |reason, message| send(ProbeUpdate::Event { kind: Kind::Warning, reason, message });
        let kind = self.kind;
        let result = match outcome {
            Outcome::Success => true,
            Outcome::Warning(output) => {
                event("ProbeWarning", format!("{kind} probe warning: {output}"));
                true
            }
            Outcome::Failure(output) => {
                event("Unhealthy", format!("{kind} probe failed: {output}"));
                false
            }
            Outcome::Error(error) => {
                event("Unhealthy", format!("{kind} probe errored: {error}"));
                return None;
            }
            Outcome::Unsupported(why) => {
                event("ProbeNotSupported", format!("{kind} probe ignored: {why}"));
                self.unsupported = true;
                return Some(true);
            }
        };
        if self.last == Some(result) {
            self.run += 1;
        } else {
            self.last = Some(result);
            self.run = 1;
        }
        let threshold = if result { self.probe.success_threshold } else { self.probe.failure_threshold };
        (self.run >= threshold).then_some(result)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerPort, EnvVar, ExecAction, HTTPGetAction, HTTPHeader, TCPSocketAction};

    use super::*;

    fn container(probe: core::Probe) -> core::Container {
        core::Container {
            name: "app".into(),
            ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: 8080, ..Default::default() }]),
            env: Some(vec![
                EnvVar { name: "FILE".into(), value: Some("/tmp/ok".into()), ..Default::default() },
                EnvVar { name: "SECRET".into(), value_from: Some(Default::default()), ..Default::default() },
            ]),
            liveness_probe: Some(probe.clone()),
            readiness_probe: Some(probe),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_follow_the_api() {
        let probe = core::Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(80), ..Default::default() }),
            success_threshold: Some(3),
            termination_grace_period_seconds: Some(5),
            ..Default::default()
        };
        let probes = Probes::new(&container(probe));
        let liveness = probes.liveness.expect("liveness");
        assert_eq!(liveness.period, Duration::from_secs(10));
        assert_eq!(liveness.timeout, Duration::from_secs(1));
        assert_eq!(liveness.initial_delay, Duration::ZERO);
        assert_eq!(liveness.failure_threshold, 3);
        assert_eq!(liveness.success_threshold, 1, "liveness succeeds on the first success");
        assert_eq!(liveness.termination_grace, Some(Duration::from_secs(5)));
        let readiness = probes.readiness.expect("readiness");
        assert_eq!(readiness.success_threshold, 3);
        assert_eq!(readiness.termination_grace, None);
        assert!(probes.startup.is_none());
    }

    #[test]
    fn ports_resolve_by_number_name_or_numeric_string() {
        let c = container(core::Probe::default());
        assert_eq!(resolve_port(&IntOrString::Int(9000), &c), Ok(9000));
        assert_eq!(resolve_port(&IntOrString::String("http".into()), &c), Ok(8080));
        assert_eq!(resolve_port(&IntOrString::String("9090".into()), &c), Ok(9090));
        assert!(
            resolve_port(&IntOrString::String("metrics".into()), &c).unwrap_err().contains("\"metrics\" not found")
        );
        assert!(resolve_port(&IntOrString::Int(70000), &c).is_err());
        assert!(resolve_port(&IntOrString::Int(0), &c).is_err());
    }

    #[test]
    fn exec_commands_expand_static_env() {
        let probe = core::Probe {
            exec: Some(ExecAction {
                command: Some(vec![
                    "test".into(),
                    "-f".into(),
                    "$(FILE)".into(),
                    "$$(FILE)".into(),
                    "$(MISSING)".into(),
                    "[$(SECRET)]".into(),
                    "cost $5 $(".into(),
                ]),
            }),
            ..Default::default()
        };
        let probes = Probes::new(&container(probe));
        let Some(Probe { action: Action::Exec { command }, .. }) = probes.liveness else { panic!("exec probe") };
        assert_eq!(command, ["test", "-f", "/tmp/ok", "$(FILE)", "$(MISSING)", "[]", "cost $5 $("]);
    }

    #[test]
    fn http_get_takes_scheme_host_and_headers() {
        let probe = core::Probe {
            http_get: Some(HTTPGetAction {
                scheme: Some("HTTPS".into()),
                port: IntOrString::String("http".into()),
                path: Some("/healthz".into()),
                http_headers: Some(vec![HTTPHeader { name: "X-Probe".into(), value: "1".into() }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let probes = Probes::new(&container(probe));
        assert_eq!(
            probes.readiness.expect("readiness").action,
            Action::HttpGet {
                https: true,
                host: None,
                port: Ok(8080),
                path: "/healthz".into(),
                headers: vec![("X-Probe".into(), "1".into())],
            }
        );
    }
}
