//! Endpoints: for each Service with a selector, an Endpoints object of the same name listing the
//! selected pods, as kube-controller-manager's endpoints controller does: ready pods under
//! `addresses`, the others under `notReadyAddresses` (all under `addresses` when the Service
//! publishes not-ready addresses), each with its node and a reference to the pod, grouped into
//! subsets by the ports they serve (a named `targetPort` is resolved per pod from its
//! containers' ports). Services without a selector are left alone (their Endpoints are the
//! user's); Endpoints have no owner, and go when their Service goes.
//!
//! The pod filtering and port resolution here serve the EndpointSlice controller too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use super::workload::is_ready;
use super::{Context, DEBOUNCE, ReconcileError, retry_soon};

/// The label kube puts on the Endpoints and EndpointSlices of a headless Service.
pub(super) const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The Service's selector; None when it has none (an empty one counts as none, as it does once
/// stored).
pub(super) fn selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    service.spec.as_ref()?.selector.as_ref().filter(|s| !s.is_empty())
}

fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

pub(super) fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.pod_ip.as_deref().filter(|ip| !ip.is_empty())
}

/// kube's `ShouldPodBeInEndpoints`: the pod has an address, is not finished, and is not being
/// deleted unless `include_terminating`.
pub(super) fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod_ip(pod).is_some()
        && !matches!(phase, Some("Succeeded" | "Failed"))
        && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// kube's `FindPort`: a numeric targetPort is taken as it is; a named one is the container port
/// of that name and the Service port's protocol. None when the pod has no such port.
pub(super) fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
            containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name) && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                .map(|p| p.container_port)
        }
    }
}

pub(super) fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

pub(super) fn node_name(pod: &Pod) -> Option<String> {
    pod.spec.as_ref()?.node_name.clone().filter(|n| !n.is_empty())
}

/// kube's `ShouldSetHostname`: the pod's hostname when its subdomain names the Service.
pub(super) fn hostname(pod: &Pod, service: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == service.metadata.name.as_deref()
        && pod.metadata.namespace == service.metadata.namespace)
        .then(|| hostname.to_string())
}

pub(super) fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

pub(super) fn publishes_not_ready(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false)
}

/// The labels of the Service's Endpoints (and slices): the Service's own, and the headless mark.
pub(super) fn labels_for(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

/// The pods in the Service's namespace its selector picks.
pub(super) async fn selected_pods(
    client: &kube::Client,
    namespace: &str,
    selector: &BTreeMap<String, String>,
) -> kube::Result<Vec<Pod>> {
    let query: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods =
        Api::<Pod>::namespaced(client.clone(), namespace).list(&ListParams::default().labels(&query.join(","))).await?;
    Ok(pods.items.into_iter().filter(|p| selects(selector, p)).collect())
}

/// The Services of a pod's namespace that a change to the pod may concern: all of them with a
/// selector, since a pod whose labels changed may have left one.
pub(super) fn services_of_namespace(services: &Store<Service>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    services
        .state_filter(|s| s.metadata.namespace.as_deref() == Some(namespace) && selector(s).is_some())
        .iter()
        .map(|s| ObjectRef::from_obj(&**s))
        .collect()
}

/// A port as subsets tell them apart: name, number, protocol.
type PortKey = (Option<String>, i32, Option<String>);
/// The addresses offering a port: (ip, pod uid) → (address, ready).
type Offering = BTreeMap<(String, String), (EndpointAddress, bool)>;
/// One address of an offering with its readiness: (ip, pod uid, ready).
type OfferingKey = (String, String, bool);

fn port_key(p: &EndpointPort) -> PortKey {
    (p.name.clone(), p.port, p.protocol.clone())
}

/// The subsets of the Endpoints of `service` given the pods its selector picks, as kube's
/// `RepackSubsets` groups them: ports served by the same set of addresses share a subset.
fn desired_subsets(service: &Service, pods: &[Pod]) -> Vec<EndpointSubset> {
    let tolerate_unready = publishes_not_ready(service);
    let service_ports = service.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let mut by_port: BTreeMap<PortKey, (EndpointPort, Offering)> = BTreeMap::new();
    for pod in pods {
        if !should_be_in_endpoints(pod, tolerate_unready) {
            continue;
        }
        let ip = pod_ip(pod).unwrap_or_default().to_string();
        let address = EndpointAddress {
            ip: ip.clone(),
            node_name: node_name(pod),
            target_ref: Some(target_ref(pod)),
            hostname: hostname(pod, service),
        };
        let ready = tolerate_unready || is_ready(pod);
        let ports: Vec<EndpointPort> = if service_ports.is_empty() && is_headless(service) {
            // A headless Service without ports still lists its pods (a sentinel port, left out below).
            vec![EndpointPort { port: -1, ..Default::default() }]
        } else {
            service_ports
                .iter()
                .filter_map(|sp| {
                    Some(EndpointPort {
                        name: sp.name.clone().filter(|n| !n.is_empty()),
                        port: find_port(pod, sp)?,
                        protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                        app_protocol: sp.app_protocol.clone(),
                    })
                })
                .collect()
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        for port in ports {
            let entry = by_port.entry(port_key(&port)).or_insert_with(|| (port, BTreeMap::new()));
            let slot = entry.1.entry((ip.clone(), uid.clone())).or_insert_with(|| (address.clone(), ready));
            slot.1 |= ready;
        }
    }
    // Ports grouped by the exact set of addresses (and readiness) offering them.
    let mut subsets: BTreeMap<Vec<OfferingKey>, (Vec<EndpointPort>, Offering)> = BTreeMap::new();
    for (port, offering) in by_port.into_values() {
        let key: Vec<OfferingKey> = offering.iter().map(|((ip, uid), (_, r))| (ip.clone(), uid.clone(), *r)).collect();
        let entry = subsets.entry(key).or_insert_with(|| (Vec::new(), offering));
        if port.port > 0 {
            entry.0.push(port);
        }
    }
    subsets
        .into_values()
        .map(|(ports, offering)| {
            let (ready, not_ready): (Vec<_>, Vec<_>) = offering.into_values().partition(|(_, r)| *r);
            let list = |v: Vec<(EndpointAddress, bool)>| {
                (!v.is_empty()).then(|| v.into_iter().map(|(a, _)| a).collect::<Vec<_>>())
            };
            EndpointSubset {
                addresses: list(ready),
                not_ready_addresses: list(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

async fn delete_endpoints(client: &kube::Client, namespace: &str, name: &str) -> kube::Result<()> {
    match Api::<Endpoints>::namespaced(client.clone(), namespace).delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let namespace = service.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = service.metadata.name.clone().unwrap_or_default();
    let Some(selector) = selector(&service) else { return Ok(Action::await_change()) };
    // The cache may still hold a Service just deleted: ask, and clean up after it if it is gone.
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    if services.get_opt(&name).await?.is_none_or(|s| s.metadata.uid != service.metadata.uid) {
        delete_endpoints(&ctx.client, &namespace, &name).await?;
        return Ok(Action::await_change());
    }
    let pods = selected_pods(&ctx.client, &namespace, selector).await?;
    let subsets = desired_subsets(&service, &pods);
    let subsets = (!subsets.is_empty()).then_some(subsets);
    let labels = labels_for(&service);
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.get_opt(&name).await? {
        Some(current) => {
            let current_labels = current.metadata.labels.clone().unwrap_or_default();
            if current.subsets == subsets && current_labels == labels {
                return Ok(Action::await_change());
            }
            let mut wanted = current;
            wanted.metadata.labels = Some(labels);
            wanted.subsets = subsets;
            api.replace(&name, &PostParams::default(), &wanted).await?;
        }
        None => {
            let endpoints = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.clone()),
                    labels: Some(labels),
                    ..Default::default()
                },
                subsets,
            };
            match api.create(&PostParams::default(), &endpoints).await {
                Ok(_) => {}
                // Created meanwhile (by us, a moment ago): the next trigger updates it.
                Err(kube::Error::Api(e)) if e.code == 409 => return Ok(Action::requeue(Duration::from_millis(200))),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Action::await_change())
}

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let services: Api<Service> = Api::all(client.clone());
    let ctx = Context::new(client.clone(), "endpoint-controller");
    let controller = Controller::new(services.clone(), watcher::Config::default());
    let store = controller.store();
    controller
        .watches(Api::<Pod>::all(client.clone()), watcher::Config::default(), move |pod| {
            services_of_namespace(&store, &pod)
        })
        // A deleted Service is no longer in the cache: its trigger surfaces as ObjectNotFound below.
        .watches(services, watcher::Config::default(), |service| Some(ObjectRef::from_obj(&service)))
        .with_config(controller::Config::default().debounce(DEBOUNCE))
        .run(reconcile, retry_soon, ctx)
        .for_each(|result| {
            let client = client.clone();
            async move {
                if let Err(controller::Error::ObjectNotFound(gone)) = result {
                    let namespace = gone.namespace.clone().unwrap_or_default();
                    if let Err(error) = delete_endpoints(&client, &namespace, &gone.name).await {
                        tracing::warn!(%namespace, name = %gone.name, %error, "cannot delete the Endpoints of a deleted Service");
                    }
                }
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: Option<&str>, ready: bool, ports: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default", "labels": {"tier": "front"}},
            "spec": spec}))
        .unwrap()
    }

    fn ips(addresses: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        addresses.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn ready_pods_are_addresses_and_the_others_not_ready_addresses() {
        let svc =
            service(json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}));
        let pods = [
            pod("a", Some("10.0.0.2"), true, json!([])),
            pod("b", Some("10.0.0.1"), false, json!([])),
            pod("c", None, true, json!([])),
        ];
        let subsets = desired_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), ["10.0.0.2"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.1"]);
        let port = &subsets[0].ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port, port.protocol.as_deref()), (Some("http"), 8080, Some("TCP")));
        let address = &subsets[0].addresses.as_ref().unwrap()[0];
        assert_eq!(address.node_name.as_deref(), Some("n1"));
        let target = address.target_ref.as_ref().unwrap();
        assert_eq!(
            (target.kind.as_deref(), target.name.as_deref(), target.uid.as_deref()),
            (Some("Pod"), Some("a"), Some("uid-a"))
        );

        let published =
            service(json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true, "ports": [{"port": 80}]}));
        let subsets = desired_subsets(&published, &pods);
        assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1", "10.0.0.2"]);
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_split_subsets() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}));
        let pods = [
            pod("a", Some("10.0.0.1"), true, json!([{"name": "http", "containerPort": 8080}])),
            pod("b", Some("10.0.0.2"), true, json!([{"name": "http", "containerPort": 9090}])),
            pod("c", Some("10.0.0.3"), true, json!([{"name": "other", "containerPort": 7070}])),
            pod("d", Some("10.0.0.4"), true, json!([{"name": "http", "containerPort": 8080, "protocol": "UDP"}])),
        ];
        let subsets = desired_subsets(&svc, &pods);
        let mut seen: Vec<(i32, Vec<&str>)> =
            subsets.iter().map(|s| (s.ports.as_ref().unwrap()[0].port, ips(&s.addresses))).collect();
        seen.sort();
        assert_eq!(seen, [(8080, vec!["10.0.0.1"]), (9090, vec!["10.0.0.2"])], "c and d have no such TCP port");
    }

    #[test]
    fn ports_served_by_the_same_pods_share_a_subset() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": 8080}, {"name": "metrics", "port": 9100}]}));
        let pods = [pod("a", Some("10.0.0.1"), true, json!([])), pod("b", Some("10.0.0.2"), true, json!([]))];
        let subsets = desired_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].ports.as_ref().unwrap().len(), 2);
        assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn finished_and_terminating_pods_are_left_out() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let mut done = pod("done", Some("10.0.0.1"), false, json!([]));
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut going = pod("going", Some("10.0.0.2"), true, json!([]));
        going.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:00:00Z".parse().unwrap()));
        assert!(desired_subsets(&svc, &[done, going]).is_empty());
    }

    #[test]
    fn headless_services_without_ports_list_their_pods_and_are_labelled() {
        let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
        let subsets = desired_subsets(&svc, &[pod("a", Some("10.0.0.1"), true, json!([]))]);
        assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1"]);
        assert!(subsets[0].ports.is_none());
        assert_eq!(
            labels_for(&svc),
            BTreeMap::from([("tier".into(), "front".into()), (HEADLESS_LABEL.into(), String::new())])
        );
    }

    #[test]
    fn services_without_a_selector_have_none() {
        assert!(selector(&service(json!({"ports": [{"port": 80}]}))).is_none());
        assert!(selector(&service(json!({"selector": {}}))).is_none());
    }
}
