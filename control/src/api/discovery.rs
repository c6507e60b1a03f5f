//! Discovery: `/version`, the legacy `/api`, `/apis`, per-group and per-group-version resource
//! lists, and aggregated discovery (`apidiscovery.k8s.io/v2`), all built from the resource table.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::registry::kinds::{self, RESOURCES, ResourceInfo};

/// The Kubernetes version Wharf serves the API of.
pub const KUBERNETES_MINOR: &str = "33";

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0-wharf.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

/// Resources served outside the resource table: `metrics.k8s.io/v1beta1`, computed on read
/// (see `resource_metrics`): plural, singular, kind, namespaced.
const METRICS_RESOURCES: [(&str, &str, &str, bool); 2] =
    [("nodes", "", "NodeMetrics", false), ("pods", "", "PodMetrics", true)];
/// What the metrics resources allow.
const METRICS_VERBS: [&str; 2] = ["get", "list"];
use super::resource_metrics::{GROUP as METRICS_GROUP, VERSION as METRICS_VERSION};

/// Every group-version served, the resource table's then the metrics API.
fn all_group_versions() -> Vec<(&'static str, &'static str)> {
    let mut all = kinds::group_versions();
    all.push((METRICS_GROUP, METRICS_VERSION));
    all
}

fn in_group(group: &str) -> impl Iterator<Item = &'static ResourceInfo> + '_ {
    RESOURCES.iter().filter(move |r| r.group == group)
}

fn group_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = Vec::new();
    for (group, _) in all_group_versions() {
        if !group.is_empty() && !names.contains(&group) {
            names.push(group);
        }
    }
    names
}

fn api_group(name: &str) -> Value {
    let versions: Vec<Value> = all_group_versions()
        .into_iter()
        .filter(|(g, _)| *g == name)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": versions, "preferredVersion": versions[0]})
}

/// `/api` (legacy form).
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
}

/// `/apis` (legacy form).
pub fn group_list() -> Value {
    let groups: Vec<Value> = group_names().into_iter().map(api_group).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/GROUP`.
pub fn group(name: &str) -> Option<Value> {
    group_names().contains(&name).then(|| {
        let mut g = api_group(name);
        g["kind"] = "APIGroup".into();
        g["apiVersion"] = "v1".into();
        g
    })
}

/// `/apis/metrics.k8s.io/v1beta1`.
fn metrics_resource_list() -> Value {
    let resources: Vec<Value> = METRICS_RESOURCES
        .iter()
        .map(|(plural, singular, kind, namespaced)| {
            json!({"name": plural, "singularName": singular, "namespaced": namespaced, "kind": kind, "verbs": METRICS_VERBS})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{METRICS_GROUP}/{METRICS_VERSION}"), "resources": resources})
}

/// `/api/v1` or `/apis/GROUP/VERSION`.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if (group, version) == (METRICS_GROUP, METRICS_VERSION) {
        return Some(metrics_resource_list());
    }
    let mut resources = Vec::new();
    for r in in_group(group).filter(|r| r.version == version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in r.subresources {
            let (g, v, kind) = sub.gvk(r);
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub.name()),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": sub.verbs(),
            });
            if (g, v) != (r.group, r.version) {
                entry["group"] = g.into();
                entry["version"] = v.into();
            }
            resources.push(entry);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}))
}

/// Aggregated discovery for `/api` (`core` true) or `/apis`.
pub fn aggregated(core: bool) -> Value {
    let groups: Vec<&str> = if core { vec![""] } else { group_names() };
    let items: Vec<Value> = groups
        .into_iter()
        .map(|group| {
            let versions: Vec<Value> = all_group_versions()
                .into_iter()
                .filter(|(g, _)| *g == group)
                .map(|(_, version)| {
                    let resources: Vec<Value> = if group == METRICS_GROUP {
                        aggregated_metrics_resources()
                    } else {
                        in_group(group).filter(|r| r.version == version).map(aggregated_resource).collect()
                    };
                    json!({"version": version, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let metadata = if group.is_empty() {
                json!({"creationTimestamp": null})
            } else {
                json!({"name": group, "creationTimestamp": null})
            };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

fn aggregated_metrics_resources() -> Vec<Value> {
    METRICS_RESOURCES
        .iter()
        .map(|(plural, singular, kind, namespaced)| {
            json!({
                "resource": plural,
                "responseKind": {"group": METRICS_GROUP, "version": METRICS_VERSION, "kind": kind},
                "scope": if *namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": singular,
                "verbs": METRICS_VERBS,
            })
        })
        .collect()
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|sub| {
            let (g, v, kind) = sub.gvk(r);
            json!({"subresource": sub.name(), "responseKind": {"group": g, "version": v, "kind": kind}, "verbs": sub.verbs()})
        })
        .collect();
    let mut entry = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

const AGGREGATED_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the client asks for aggregated discovery (v2) before the legacy form.
pub fn wants_aggregated(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    for choice in accept.split(',') {
        let params: Vec<&str> = choice.split(';').map(str::trim).collect();
        if params.contains(&"as=APIGroupDiscoveryList") {
            if params.contains(&"v=v2") && params.contains(&"g=apidiscovery.k8s.io") {
                return true;
            }
            continue;
        }
        return false;
    }
    false
}

/// `/api` or `/apis` in the form the client asked for.
pub fn root(headers: &HeaderMap, core: bool) -> Response {
    if wants_aggregated(headers) {
        let body = serde_json::to_vec(&aggregated(core)).expect("JSON serializes");
        return (StatusCode::OK, [(header::CONTENT_TYPE, AGGREGATED_TYPE)], body).into_response();
    }
    let body = if core { core_versions() } else { group_list() };
    super::output::json(StatusCode::OK, &body, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_is_served_as_autoscaling_v1() {
        let apps = resource_list("apps", "v1").unwrap();
        let scale = apps["resources"].as_array().unwrap().iter().find(|r| r["name"] == "deployments/scale").unwrap();
        assert_eq!((scale["group"].as_str(), scale["kind"].as_str()), (Some("autoscaling"), Some("Scale")));
    }

    #[test]
    fn pods_eviction_is_served_as_policy_v1_as_kubectl_drain_checks() {
        let core = resource_list("", "v1").unwrap();
        let eviction =
            core["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods/eviction").unwrap().clone();
        assert_eq!(
            (eviction["group"].as_str(), eviction["version"].as_str(), eviction["kind"].as_str()),
            (Some("policy"), Some("v1"), Some("Eviction"))
        );
        assert_eq!(eviction["verbs"], json!(["create"]));
    }

    #[test]
    fn aggregated_lists_every_resource_once() {
        let core = aggregated(true);
        let groups = aggregated(false);
        let count = |doc: &Value| -> usize {
            doc["items"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["versions"].as_array().unwrap())
                .map(|v| v["resources"].as_array().unwrap().len())
                .sum()
        };
        assert_eq!(count(&core) + count(&groups), RESOURCES.len() + METRICS_RESOURCES.len());
        let pods = &core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap()
            .clone();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
    }

    #[test]
    fn the_metrics_api_is_discovered_as_kubectl_top_looks_for_it() {
        let groups = group_list();
        let metrics = groups["groups"].as_array().unwrap().iter().find(|g| g["name"] == "metrics.k8s.io").unwrap();
        assert_eq!(metrics["preferredVersion"]["groupVersion"], "metrics.k8s.io/v1beta1");
        let list = resource_list("metrics.k8s.io", "v1beta1").unwrap();
        let names: Vec<&str> =
            list["resources"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
        assert_eq!(names, ["nodes", "pods"]);
        assert_eq!(group("metrics.k8s.io").unwrap()["kind"], "APIGroup");
        let aggregated = aggregated(false);
        let item =
            aggregated["items"].as_array().unwrap().iter().find(|i| i["metadata"]["name"] == "metrics.k8s.io").unwrap();
        assert_eq!(item["versions"][0]["resources"][1]["responseKind"]["kind"], "PodMetrics");
    }

    #[test]
    fn aggregated_is_chosen_only_when_asked_first() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json".parse().unwrap(),
        );
        assert!(wants_aggregated(&headers));
        headers.insert(header::ACCEPT, "application/json, */*".parse().unwrap());
        assert!(!wants_aggregated(&headers));
    }
}
