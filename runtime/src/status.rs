//! What the agent knows about a pod's containers, and the pod status it writes from that:
//! phase, conditions and container statuses, following the kubelet's rules.

use jiff::Timestamp;
use serde_json::{Value, json};

/// One container's state, as Kubernetes reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        message: Option<String>,
        started_at: Timestamp,
        finished_at: Timestamp,
    },
}

impl State {
    pub fn waiting(reason: &str, message: Option<String>) -> Self {
        State::Waiting { reason: reason.into(), message }
    }

    fn json(&self, container_id: &str) -> Value {
        let time = |t: &Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        match self {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if let Some(m) = message {
                    w["message"] = m.clone().into();
                }
                json!({"waiting": w})
            }
            State::Running { started_at } => json!({"running": {"startedAt": time(started_at)}}),
            State::Terminated { exit_code, reason, message, started_at, finished_at } => {
                let mut t = json!({
                    "exitCode": exit_code,
                    "reason": reason,
                    "startedAt": time(started_at),
                    "finishedAt": time(finished_at),
                });
                if !container_id.is_empty() {
                    t["containerID"] = container_id.into();
                }
                if let Some(m) = message {
                    t["message"] = m.clone().into();
                }
                json!({"terminated": t})
            }
        }
    }
}

/// The agent's view of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub image_id: String,
    /// `wasmtime://ID` or `youki://ID` once started: the scheme names the runtime.
    pub container_id: String,
    pub state: State,
    pub last_state: Option<State>,
    pub restart_count: i32,
    /// Running and past its startup probe (if any).
    pub started: bool,
    pub ready: bool,
}

impl ContainerView {
    pub fn new(name: &str, image: &str) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            image_id: String::new(),
            container_id: String::new(),
            state: State::waiting("ContainerCreating", None),
            last_state: None,
            restart_count: 0,
            started: false,
            ready: false,
        }
    }

    fn json(&self) -> Value {
        let mut status = json!({
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "ready": self.ready,
            "started": self.started && matches!(self.state, State::Running { .. }),
            "restartCount": self.restart_count,
            "state": self.state.json(&self.container_id),
            "lastState": self.last_state.as_ref().map(|s| s.json("")).unwrap_or_else(|| json!({})),
        });
        if !self.container_id.is_empty() {
            status["containerID"] = self.container_id.clone().into();
        }
        status
    }

    fn succeeded(&self) -> bool {
        matches!(self.state, State::Terminated { exit_code: 0, .. })
    }
}

/// Everything the status is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub restart_policy: String,
    pub init: Vec<ContainerView>,
    pub app: Vec<ContainerView>,
    pub start_time: Timestamp,
    pub host_ip: String,
    pub pod_ip: String,
    /// Set when the pod cannot run at all (e.g. an init container failed under Never).
    pub failure: Option<(String, String)>,
}

/// The pod phase, as the kubelet's getPhase decides it.
pub fn phase(view: &PodView) -> &'static str {
    if view.failure.is_some() {
        return "Failed";
    }
    if !view.init.iter().all(ContainerView::succeeded) {
        return "Pending";
    }
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &view.app {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated { exit_code, .. } => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            // A container waiting to be restarted has run before: it counts as stopped.
            State::Waiting { .. } if c.last_state.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match view.restart_policy.as_str() {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            // OnFailure restarts the failed ones.
            _ if view.app.iter().any(|c| matches!(c.state, State::Waiting { .. })) => "Running",
            _ => "Failed",
        }
    } else {
        "Pending"
    }
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, now: &str) -> Value {
    let mut c = json!({"type": type_, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(reason) = reason.filter(|_| !ok) {
        c["reason"] = reason.into();
    }
    c
}

/// The `status` the agent writes for the pod.
pub fn pod_status(view: &PodView) -> Value {
    let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let phase = phase(view);
    let initialized = view.init.iter().all(ContainerView::succeeded);
    let containers_ready = !view.app.is_empty() && view.app.iter().all(|c| c.ready);
    let mut status = json!({
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", !view.pod_ip.is_empty(), None, &now),
            condition("Initialized", initialized, Some("ContainersNotInitialized"), &now),
            condition("Ready", containers_ready, Some("ContainersNotReady"), &now),
            condition("ContainersReady", containers_ready, Some("ContainersNotReady"), &now),
            condition("PodScheduled", true, None, &now),
        ],
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "startTime": view.start_time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "containerStatuses": view.app.iter().map(ContainerView::json).collect::<Vec<_>>(),
    });
    // A pod on the pod network has no address until its sandbox is connected.
    if !view.pod_ip.is_empty() {
        status["podIP"] = view.pod_ip.clone().into();
        status["podIPs"] = json!([{"ip": view.pod_ip}]);
    }
    if !view.init.is_empty() {
        status["initContainerStatuses"] = view.init.iter().map(ContainerView::json).collect::<Vec<_>>().into();
    }
    if let Some((reason, message)) = &view.failure {
        status["reason"] = reason.clone().into();
        status["message"] = message.clone().into();
        // The kubelet marks a pod it evicted as disrupted by itself.
        if reason == crate::eviction::EVICTED {
            let mut disrupted = condition("DisruptionTarget", true, None, &now);
            disrupted["reason"] = "TerminationByKubelet".into();
            disrupted["message"] = message.clone().into();
            status["conditions"].as_array_mut().expect("conditions").push(disrupted);
        }
    }
    status
}

/// Whether a container that ended should run again under the pod's restart policy.
pub fn restarts(restart_policy: &str, exit_code: i32, init: bool) -> bool {
    match restart_policy {
        "Always" => true,
        "OnFailure" => exit_code != 0,
        // Init containers under Never are not retried; app containers neither.
        _ => {
            let _ = init;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(policy: &str, app: Vec<State>) -> PodView {
        PodView {
            restart_policy: policy.into(),
            init: vec![],
            app: app
                .into_iter()
                .enumerate()
                .map(|(i, s)| ContainerView { state: s, ..ContainerView::new(&format!("c{i}"), "img") })
                .collect(),
            start_time: Timestamp::now(),
            host_ip: "127.0.0.1".into(),
            pod_ip: "127.0.0.1".into(),
            failure: None,
        }
    }

    fn done(code: i32) -> State {
        let t = Timestamp::now();
        State::Terminated { exit_code: code, reason: "Completed".into(), message: None, started_at: t, finished_at: t }
    }

    #[test]
    fn phases_follow_the_kubelet() {
        let running = State::Running { started_at: Timestamp::now() };
        assert_eq!(phase(&view("Always", vec![State::waiting("ContainerCreating", None)])), "Pending");
        assert_eq!(phase(&view("Always", vec![running.clone()])), "Running");
        assert_eq!(phase(&view("Never", vec![done(0)])), "Succeeded");
        assert_eq!(phase(&view("Never", vec![done(0), done(1)])), "Failed");
        assert_eq!(phase(&view("Always", vec![done(0)])), "Running");
        assert_eq!(phase(&view("OnFailure", vec![done(0)])), "Succeeded");
        assert_eq!(phase(&view("Never", vec![running, done(1)])), "Running");
    }

    #[test]
    fn a_crash_looping_container_keeps_the_pod_running() {
        let mut v = view("Always", vec![State::waiting("CrashLoopBackOff", Some("back-off 10s".into()))]);
        v.app[0].last_state = Some(done(1));
        v.app[0].restart_count = 2;
        assert_eq!(phase(&v), "Running");
        let status = pod_status(&v);
        let c = &status["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(c["restartCount"], 2);
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let mut v = view("Always", vec![State::waiting("PodInitializing", None)]);
        v.init = vec![ContainerView::new("setup", "img")];
        assert_eq!(phase(&v), "Pending");
        let status = pod_status(&v);
        assert_eq!(status["conditions"][1]["status"], "False");
        v.init[0].state = done(0);
        v.app[0].state = State::Running { started_at: Timestamp::now() };
        v.app[0].ready = true;
        assert_eq!(phase(&v), "Running");
        let status = pod_status(&v);
        assert!(status["conditions"].as_array().unwrap().iter().all(|c| c["status"] == "True"));
    }

    #[test]
    fn an_evicted_pod_is_failed_and_marked_disrupted_by_the_kubelet() {
        let mut v = view("Always", vec![done(137)]);
        v.failure = Some(("Evicted".into(), "Usage of EmptyDir volume \"x\" exceeds the limit \"1Mi\". ".into()));
        assert_eq!(phase(&v), "Failed");
        let status = pod_status(&v);
        assert_eq!(status["reason"], "Evicted");
        let conditions = status["conditions"].as_array().unwrap();
        let disrupted = conditions.iter().find(|c| c["type"] == "DisruptionTarget").unwrap();
        assert_eq!((&disrupted["status"], &disrupted["reason"]), (&"True".into(), &"TerminationByKubelet".into()));
        assert_eq!(disrupted["message"], status["message"]);
        v.failure = Some(("DeadlineExceeded".into(), "late".into()));
        assert!(pod_status(&v)["conditions"].as_array().unwrap().iter().all(|c| c["type"] != "DisruptionTarget"));
    }

    #[test]
    fn restart_policies() {
        assert!(restarts("Always", 0, false));
        assert!(restarts("OnFailure", 2, false));
        assert!(!restarts("OnFailure", 0, false));
        assert!(!restarts("Never", 1, false));
    }
}
