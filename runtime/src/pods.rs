//! Follows the pods bound to this node (a watch with `spec.nodeName=NODE`) and keeps one pod
//! worker per pod: starts it for a new pod, tells it to stop when the pod is being deleted or
//! is gone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

use crate::worker::{self, Context};

struct Worker {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Deletes the object of a pod that has nothing left on this node (grace 0, as the kubelet's
/// final delete), unless its uid changed meanwhile.
pub(crate) async fn release(ctx: &Context, pod: &Pod) {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), pod.metadata.namespace.as_deref().unwrap_or_default());
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: pod.metadata.uid.clone(), resource_version: None }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => tracing::warn!(pod = %name, error = %e, "cannot release the deleted pod"),
    }
}

/// Removes the directory of pod `uid` and what is mounted under it (sandbox namespaces,
/// volumes), and the pod's cgroups. Blocks: call it from a blocking thread.
pub(crate) fn remove_pod_dir(data_dir: &std::path::Path, uid: &str) {
    let pod_dir = data_dir.join("pods").join(uid);
    crate::sandbox::remove(&pod_dir.join("sandbox"), &crate::linux::cgroup_parent(uid));
    crate::volumes::unmount_all(&pod_dir.join("volumes"));
    let _ = std::fs::remove_dir_all(&pod_dir);
}

/// Removes the containers the runtimes hold (from before this agent started), and the pod
/// directories, whose pod has no worker here: it was deleted, finished or moved while no agent
/// ran. Container ids start with their pod's uid.
async fn remove_unclaimed(ctx: &Context, workers: &HashMap<String, Worker>) {
    for shim in &ctx.shims {
        for id in shim.existing() {
            if workers.keys().any(|uid| id.starts_with(uid.as_str())) {
                continue;
            }
            tracing::info!(container = %id, runtime = shim.name(), "removing a container no pod claims");
            if let Err(e) = shim.remove(&id).await {
                tracing::warn!(container = %id, error = %e, "cannot remove a container no pod claims");
            }
        }
    }
    let data_dir = ctx.data_dir.clone();
    let claimed: Vec<String> = workers.keys().cloned().collect();
    let _ = tokio::task::spawn_blocking(move || {
        for entry in std::fs::read_dir(data_dir.join("pods")).into_iter().flatten().flatten() {
            let uid = entry.file_name().to_string_lossy().to_string();
            if !claimed.contains(&uid) {
                remove_pod_dir(&data_dir, &uid);
            }
        }
    })
    .await;
}

pub async fn run(ctx: Arc<Context>) {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node.name));
    let mut events = watcher(pods, config).default_backoff().boxed();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    // Deleted pods the (re)list found with no worker: released only once what the runtimes hold
    // of them is removed (at `InitDone`), so an object is never gone while its containers run.
    let mut listing = true;
    let mut to_release: Vec<Pod> = Vec::new();
    // The pods the (re)list found: a worker whose pod it did not find stops at `InitDone` (its
    // pod was deleted while the watch was down, e.g. force-deleted while this node was cut off).
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(error = %e, "pod watch failed; retrying");
                continue;
            }
        };
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let deleting = pod.metadata.deletion_timestamp.is_some();
                if listing {
                    listed.insert(uid.clone());
                }
                workers.retain(|_, w| !w.task.is_finished());
                match workers.get(&uid) {
                    Some(worker) => {
                        if deleting {
                            let _ = worker.stop.send(true);
                        }
                    }
                    None if deleting && listing => to_release.push(pod),
                    None if deleting => release(&ctx, &pod).await,
                    // Finished before this agent started: nothing to run again.
                    None if terminal(&pod) => {}
                    None => {
                        let (stop, stop_rx) = watch::channel(false);
                        let task = tokio::spawn(worker::run_pod(ctx.clone(), Arc::new(pod), stop_rx));
                        workers.insert(uid, Worker { stop, task });
                    }
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some(worker) = workers.get(pod.metadata.uid.as_deref().unwrap_or_default()) {
                    let _ = worker.stop.send(true);
                }
            }
            watcher::Event::InitDone => {
                for (uid, worker) in &workers {
                    if !listed.contains(uid) {
                        tracing::info!(pod = %uid, "stopping a pod that is gone from the API server");
                        let _ = worker.stop.send(true);
                    }
                }
                remove_unclaimed(&ctx, &workers).await;
                listing = false;
                for pod in to_release.drain(..) {
                    release(&ctx, &pod).await;
                }
            }
            watcher::Event::Init => {
                listing = true;
                to_release.clear();
                listed.clear();
            }
        }
    }
}
