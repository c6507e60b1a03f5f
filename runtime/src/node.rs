//! The agent's Node: registering it with capacity, labels, addresses, conditions and images,
//! renewing its Lease in kube-node-lease every quarter of the lease duration (10 s for the
//! default 40 s, as the kubelet), and refreshing its status conditions and images.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ContainerImage, Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::AgentError;
use crate::images::ImageInventory;

/// The kubelet's default `--node-lease-duration-seconds`: how long the Lease is valid.
pub const DEFAULT_LEASE_DURATION_SECONDS: u32 = 40;

/// How often the Lease is renewed: a quarter of its duration (as the kubelet), at least 1 s.
pub fn lease_renew_interval(lease_duration_seconds: u32) -> Duration {
    Duration::from_millis(u64::from(lease_duration_seconds) * 1000 / 4).max(Duration::from_secs(1))
}

/// The label (set to `true`) by which a node offers a runtime handler, e.g.
/// `runtime.wharf.dev/youki`: one per shim, so nodeSelectors and the scheduler can match it.
pub fn runtime_label(handler: &str) -> String {
    format!("runtime.wharf.dev/{handler}")
}

/// What the agent says about its node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub runtimes: Vec<String>,
    pub max_pods: u32,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Total memory in bytes, from /proc/meminfo.
fn memory_bytes() -> u64 {
    read_trim("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn os_image() -> String {
    read_trim("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn now() -> Time {
    Time(Timestamp::now())
}

fn conditions(ready: bool) -> Vec<NodeCondition> {
    let t = now();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(t.clone()),
        last_transition_time: Some(t.clone()),
    };
    vec![
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "agent has sufficient memory available"),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "agent has no disk pressure"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "agent has sufficient PID available"),
        if ready {
            condition("Ready", "True", "KubeletReady", "wharf agent is posting ready status")
        } else {
            condition("Ready", "False", "KubeletNotReady", "wharf agent is starting")
        },
    ]
}

/// The Node object this agent registers, holding `images`.
pub fn node_object(info: &NodeInfo, images: &[ContainerImage]) -> Node {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let capacity = BTreeMap::from([
        ("cpu".to_string(), Quantity(cpus.to_string())),
        ("memory".to_string(), Quantity(format!("{}Ki", memory_bytes() / 1024))),
        ("pods".to_string(), Quantity(info.max_pods.to_string())),
        ("ephemeral-storage".to_string(), Quantity("100Gi".into())),
    ]);
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), info.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "kubernetes.io/arch".to_string(),
            if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }.into(),
        ),
    ]);
    labels.extend(info.runtimes.iter().map(|r| (runtime_label(r), "true".to_string())));
    Node {
        metadata: ObjectMeta { name: Some(info.name.clone()), labels: Some(labels), ..Default::default() },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: Some(capacity.clone()),
            allocatable: Some(capacity),
            addresses: Some(vec![
                NodeAddress { type_: "InternalIP".into(), address: info.address.clone() },
                NodeAddress { type_: "Hostname".into(), address: info.name.clone() },
            ]),
            conditions: Some(conditions(true)),
            images: (!images.is_empty()).then(|| images.to_vec()),
            daemon_endpoints: Some(k8s_openapi::api::core::v1::NodeDaemonEndpoints {
                kubelet_endpoint: Some(k8s_openapi::api::core::v1::DaemonEndpoint { port: info.port as i32 }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: if cfg!(target_arch = "x86_64") { "amd64".into() } else { std::env::consts::ARCH.into() },
                boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
                container_runtime_version: info
                    .runtimes
                    .iter()
                    .map(|r| format!("{r}://"))
                    .collect::<Vec<_>>()
                    .join(","),
                kernel_version: read_trim("/proc/sys/kernel/osrelease"),
                kube_proxy_version: String::new(),
                kubelet_version: format!("v1.33.0-wharf.{}", env!("CARGO_PKG_VERSION")),
                machine_id: read_trim("/etc/machine-id"),
                operating_system: "linux".into(),
                os_image: os_image(),
                system_uuid: read_trim("/sys/class/dmi/id/product_uuid"),
                swap: None,
            }),
            ..Default::default()
        }),
    }
}

/// Creates the Node, or takes over an existing one of the same name (an agent restart), with
/// the images the node holds.
pub async fn register(client: &kube::Client, info: &NodeInfo, images: &[ContainerImage]) -> Result<(), AgentError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = node_object(info, images);
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let labels = node.metadata.labels.clone();
            nodes
                .patch(&info.name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": labels}})))
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    let mut status = json!({"status": node.status});
    // Images an earlier run reported but the store no longer holds go.
    status["status"]["images"] = json!(node.status.as_ref().and_then(|s| s.images.as_ref()));
    nodes.patch_status(&info.name, &PatchParams::default(), &Patch::Merge(status)).await?;
    Ok(())
}

/// How the heartbeat runs.
#[derive(Clone)]
pub struct Heartbeat {
    /// `leaseDurationSeconds` written into the Lease; it is renewed every quarter of it.
    pub lease_duration_seconds: u32,
    /// The node's images; reported when they change.
    pub images: Option<Arc<ImageInventory>>,
    /// The images registration reported.
    pub reported: Vec<ContainerImage>,
}

/// Waits for the inventory to change; never, without one.
async fn images_changed(changes: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    let changed = match changes {
        Some(rx) => rx.changed().await.is_ok(),
        None => false,
    };
    if !changed {
        std::future::pending::<()>().await;
    }
}

/// Renews the Lease and refreshes the node's conditions until the task is dropped; a change of
/// the node's images is reported at once (after a short pause gathering a burst of pulls).
pub async fn heartbeat(client: kube::Client, info: NodeInfo, config: Heartbeat) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(client);
    let duration = i32::try_from(config.lease_duration_seconds).unwrap_or(i32::MAX);
    let mut tick = tokio::time::interval(lease_renew_interval(config.lease_duration_seconds));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut changes = config.images.as_ref().map(|i| i.subscribe());
    let mut reported = config.reported;
    loop {
        let renew = tokio::select! {
            _ = tick.tick() => true,
            _ = images_changed(&mut changes) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                false
            }
        };
        if renew {
            let renewed = renew_lease(&leases, &info.name, duration).await;
            if let Err(e) = renewed {
                tracing::warn!(error = %e, "lease renewal failed");
            }
        }
        let images = config.images.as_ref().map(|i| i.list()).unwrap_or_default();
        let new_images = images != reported;
        if !renew && !new_images {
            continue;
        }
        let mut status = json!({});
        if renew {
            let mut fresh = conditions(true);
            // A condition that did not change keeps the time it last changed, as the kubelet's do.
            if let Ok(node) = nodes.get_status(&info.name).await {
                let current = node.status.and_then(|s| s.conditions).unwrap_or_default();
                for condition in &mut fresh {
                    if let Some(same) =
                        current.iter().find(|c| c.type_ == condition.type_ && c.status == condition.status)
                    {
                        condition.last_transition_time = same.last_transition_time.clone();
                    }
                }
            }
            status["conditions"] = json!(fresh);
        }
        if new_images {
            status["images"] = json!(images);
        }
        let patch = Patch::Strategic(json!({ "status": status }));
        match nodes.patch_status(&info.name, &PatchParams::default(), &patch).await {
            Ok(_) if new_images => {
                tracing::debug!(images = images.len(), "node images reported");
                reported = images;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "node status update failed"),
        }
    }
}

/// Creates or renews the node's Lease.
async fn renew_lease(leases: &Api<Lease>, name: &str, duration: i32) -> Result<(), kube::Error> {
    let renew = MicroTime(Timestamp::now());
    match leases.get_opt(name).await? {
        Some(_) => {
            let spec = json!({"spec": {"renewTime": renew, "holderIdentity": name, "leaseDurationSeconds": duration}});
            leases.patch(name, &PatchParams::default(), &Patch::Merge(spec)).await.map(|_| ())
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(name.to_string()), ..Default::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.to_string()),
                    lease_duration_seconds: Some(duration),
                    renew_time: Some(renew),
                    ..Default::default()
                }),
            };
            leases.create(&PostParams::default(), &lease).await.map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_lists_runtimes_capacity_and_the_agent_port() {
        let info = NodeInfo {
            name: "n1".into(),
            address: "127.0.0.1".into(),
            port: 10250,
            runtimes: vec!["wasmtime".into()],
            max_pods: 2500,
        };
        let node = node_object(&info, &[]);
        assert_eq!(node.metadata.labels.as_ref().unwrap()["runtime.wharf.dev/wasmtime"], "true");
        let status = node.status.unwrap();
        assert_eq!(status.capacity.as_ref().unwrap()["pods"].0, "2500");
        assert!(status.capacity.unwrap()["memory"].0.ends_with("Ki"));
        assert_eq!(status.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port, 10250);
        let ready = status.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "True");
    }

    #[test]
    fn the_lease_is_renewed_every_quarter_of_its_duration() {
        assert_eq!(lease_renew_interval(DEFAULT_LEASE_DURATION_SECONDS), Duration::from_secs(10));
        assert_eq!(lease_renew_interval(4), Duration::from_secs(1));
        assert_eq!(lease_renew_interval(6), Duration::from_millis(1500));
        assert_eq!(lease_renew_interval(1), Duration::from_secs(1));
    }
}
