//! EndpointSlices: for each Service with a selector, `discovery.k8s.io/v1` EndpointSlices listing
//! the selected pods, as kube-controller-manager's endpointslice controller does: one endpoint per
//! pod with an address (terminating ones too) and its ready/serving/terminating conditions, node
//! and pod reference; pods grouped by the ports they resolve to, at most 100 endpoints per slice.
//! Slices carry `kubernetes.io/service-name` and the controller's `managed-by` label and are owned
//! by their Service, so the garbage collector removes them with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::watcher;

use super::endpoints::{
    find_port, hostname, labels_for, node_name, pod_ip, publishes_not_ready, selected_pods, selector,
    services_of_namespace, should_be_in_endpoints, target_ref,
};
use super::workload::{controller_ref, is_ready};
use super::{Context, DEBOUNCE, ReconcileError, retry_soon};

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming who manages a slice, and this controller's value of it.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// kube-controller-manager's default `--max-endpoints-per-slice`.
const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// What one slice holds.
#[derive(Debug, Clone, PartialEq)]
struct Content {
    ports: Option<Vec<EndpointPort>>,
    endpoints: Vec<Endpoint>,
}

/// kube's `podToEndpoint`.
fn endpoint(pod: &Pod, service: &Service) -> Endpoint {
    let serving = is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    // Never ready while terminating, unless the Service publishes not-ready addresses.
    let ready = publishes_not_ready(service) || (serving && !terminating);
    Endpoint {
        addresses: vec![pod_ip(pod).unwrap_or_default().to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        node_name: node_name(pod),
        target_ref: Some(target_ref(pod)),
        hostname: hostname(pod, service),
        ..Default::default()
    }
}

/// The slices `service` should have given the pods its selector picks: pods grouped by the
/// ports they resolve to, each group cut into slices of at most 100; one empty slice when there
/// is no endpoint at all.
fn desired_slices(service: &Service, pods: &[Pod]) -> Vec<Content> {
    let service_ports = service.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    type PortsKey = Vec<(String, i32, String)>;
    let mut groups: BTreeMap<PortsKey, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for pod in pods.iter().filter(|p| should_be_in_endpoints(p, true)) {
        let ports: Vec<EndpointPort> = service_ports
            .iter()
            .filter_map(|sp| {
                Some(EndpointPort {
                    name: Some(sp.name.clone().unwrap_or_default()),
                    port: Some(find_port(pod, sp)?),
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        let key = ports
            .iter()
            .map(|p| {
                (p.name.clone().unwrap_or_default(), p.port.unwrap_or_default(), p.protocol.clone().unwrap_or_default())
            })
            .collect();
        groups.entry(key).or_insert_with(|| (ports, Vec::new())).1.push(endpoint(pod, service));
    }
    let mut slices = Vec::new();
    for (ports, mut endpoints) in groups.into_values() {
        endpoints.sort_by(|a, b| {
            let name = |e: &Endpoint| e.target_ref.as_ref().and_then(|r| r.name.clone());
            a.addresses.cmp(&b.addresses).then_with(|| name(a).cmp(&name(b)))
        });
        for chunk in endpoints.chunks(MAX_ENDPOINTS_PER_SLICE) {
            slices.push(Content { ports: Some(ports.clone()), endpoints: chunk.to_vec() });
        }
    }
    if slices.is_empty() {
        slices.push(Content { ports: None, endpoints: Vec::new() });
    }
    slices
}

fn content_of(slice: &EndpointSlice) -> Content {
    Content { ports: slice.ports.clone(), endpoints: slice.endpoints.clone() }
}

/// Pairs existing slices with wanted contents: slices already holding a wanted content stay as
/// they are; the rest are rewritten in order; what is left over is created or deleted.
struct Plan<'a> {
    update: Vec<(&'a EndpointSlice, Content)>,
    create: Vec<Content>,
    delete: Vec<&'a EndpointSlice>,
}

fn plan<'a>(existing: &'a [EndpointSlice], wanted: Vec<Content>, labels: &BTreeMap<String, String>) -> Plan<'a> {
    let mut free: Vec<&EndpointSlice> = existing.iter().collect();
    let mut rest = Vec::new();
    for content in wanted {
        match free.iter().position(|s| content_of(s) == content && s.metadata.labels.as_ref() == Some(labels)) {
            Some(i) => {
                free.remove(i);
            }
            None => rest.push(content),
        }
    }
    let mut update = Vec::new();
    let mut create = Vec::new();
    for content in rest {
        if free.is_empty() {
            create.push(content);
        } else {
            update.push((free.remove(0), content));
        }
    }
    Plan { update, create, delete: free }
}

fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = labels_for(service);
    labels.insert(SERVICE_NAME_LABEL.into(), service.metadata.name.clone().unwrap_or_default());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    labels
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let namespace = service.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = service.metadata.name.clone().unwrap_or_default();
    let Some(selector) = selector(&service) else { return Ok(Action::await_change()) };
    if service.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let pods = selected_pods(&ctx.client, &namespace, selector).await?;
    let wanted = desired_slices(&service, &pods);
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &namespace);
    let query = format!("{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={CONTROLLER_NAME}");
    let uid = service.metadata.uid.clone();
    let mut existing: Vec<EndpointSlice> = api
        .list(&ListParams::default().labels(&query))
        .await?
        .items
        .into_iter()
        .filter(|s| {
            s.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.controller == Some(true) && Some(&r.uid) == uid.as_ref())
        })
        .collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let labels = slice_labels(&service);
    let plan = plan(&existing, wanted, &labels);
    for (slice, content) in plan.update {
        let mut slice = slice.clone();
        slice.metadata.labels = Some(labels.clone());
        slice.ports = content.ports;
        slice.endpoints = content.endpoints;
        api.replace(slice.metadata.name.as_deref().unwrap_or_default(), &PostParams::default(), &slice).await?;
    }
    for content in plan.create {
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", name.chars().take(57).collect::<String>())),
                namespace: Some(namespace.clone()),
                labels: Some(labels.clone()),
                owner_references: Some(vec![controller_ref(&*service)]),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            ports: content.ports,
            endpoints: content.endpoints,
        };
        api.create(&PostParams::default(), &slice).await?;
    }
    for slice in plan.delete {
        match api.delete(slice.metadata.name.as_deref().unwrap_or_default(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let ctx = Context::new(client.clone(), "endpointslice-controller");
    let controller = Controller::new(Api::<Service>::all(client.clone()), watcher::Config::default());
    let store = controller.store();
    controller
        .owns(Api::<EndpointSlice>::all(client.clone()), watcher::Config::default())
        .watches(Api::<Pod>::all(client.clone()), watcher::Config::default(), move |pod| {
            services_of_namespace(&store, &pod)
        })
        .with_config(controller::Config::default().debounce(DEBOUNCE))
        .run(reconcile, retry_soon, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(i: usize, ready: bool, terminating: bool) -> Pod {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("p{i:03}"), "namespace": "default", "uid": format!("u{i}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": format!("10.0.{}.{}", i / 250, i % 250 + 1),
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap();
        if terminating {
            pod.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:00:00Z".parse().unwrap()));
        }
        pod
    }

    fn service(extra: serde_json::Value) -> Service {
        let mut spec =
            json!({"selector": {"app": "web"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default", "uid": "s1"}, "spec": spec}))
            .unwrap()
    }

    fn conditions(e: &Endpoint) -> (bool, bool, bool) {
        let c = e.conditions.as_ref().unwrap();
        (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
    }

    #[test]
    fn endpoints_carry_their_conditions_node_and_pod() {
        let slices =
            desired_slices(&service(json!({})), &[pod(0, true, false), pod(1, false, false), pod(2, true, true)]);
        assert_eq!(slices.len(), 1);
        let s = &slices[0];
        assert_eq!(s.ports.as_ref().unwrap()[0].port, Some(8080), "the named targetPort resolved");
        assert_eq!(s.ports.as_ref().unwrap()[0].name.as_deref(), Some("web"));
        let got: Vec<(&str, (bool, bool, bool))> =
            s.endpoints.iter().map(|e| (e.addresses[0].as_str(), conditions(e))).collect();
        assert_eq!(
            got,
            [("10.0.0.1", (true, true, false)), ("10.0.0.2", (false, false, false)), ("10.0.0.3", (false, true, true))]
        );
        assert_eq!(s.endpoints[0].node_name.as_deref(), Some("n1"));
        assert_eq!(s.endpoints[0].target_ref.as_ref().unwrap().name.as_deref(), Some("p000"));

        let published = desired_slices(&service(json!({"publishNotReadyAddresses": true})), &[pod(1, false, false)]);
        assert_eq!(conditions(&published[0].endpoints[0]), (true, false, false));
    }

    #[test]
    fn slices_hold_at_most_100_endpoints_and_an_empty_service_has_one_empty_slice() {
        let pods: Vec<Pod> = (0..250).map(|i| pod(i, true, false)).collect();
        let sizes: Vec<usize> = desired_slices(&service(json!({})), &pods).iter().map(|s| s.endpoints.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let empty = desired_slices(&service(json!({})), &[]);
        assert_eq!(empty, [Content { ports: None, endpoints: vec![] }]);
    }

    #[test]
    fn the_plan_keeps_matching_slices_and_rewrites_or_removes_the_rest() {
        let svc = service(json!({}));
        let labels = slice_labels(&svc);
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY_LABEL], CONTROLLER_NAME);
        let wanted = desired_slices(&svc, &[pod(0, true, false)]);
        let slice = |name: &str, content: &Content| EndpointSlice {
            metadata: ObjectMeta { name: Some(name.into()), labels: Some(labels.clone()), ..Default::default() },
            address_type: "IPv4".into(),
            ports: content.ports.clone(),
            endpoints: content.endpoints.clone(),
        };
        let stale = Content { ports: None, endpoints: vec![] };
        let existing = [slice("web-a", &stale), slice("web-b", &wanted[0]), slice("web-c", &stale)];
        let p = plan(&existing, wanted.clone(), &labels);
        assert!(p.update.is_empty() && p.create.is_empty());
        let deleted: Vec<_> = p.delete.iter().map(|s| s.metadata.name.as_deref().unwrap()).collect();
        assert_eq!(deleted, ["web-a", "web-c"]);
        let p = plan(&existing[..1], wanted.clone(), &labels);
        assert_eq!(p.update.len(), 1);
        let p = plan(&[], wanted, &labels);
        assert_eq!(p.create.len(), 1);
    }
}
