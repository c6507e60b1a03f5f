//! Routed Services: a request goes to a ready endpoint (from the Service's EndpointSlices) of
//! its first port, picked round-robin, over plain HTTP/1.1 with both bodies streamed.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::Store;

use super::routes::Route;

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Ready `ip:port` endpoints of the Service's port named `port_name`.
pub(super) fn ready_endpoints(
    slices: &[std::sync::Arc<EndpointSlice>],
    namespace: &str,
    service: &str,
    port_name: &str,
) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = slices
        .iter()
        .filter(|slice| {
            slice.metadata.namespace.as_deref() == Some(namespace)
                && slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)).map(String::as_str)
                    == Some(service)
        })
        .flat_map(|slice| crate::proxy::rules::ready_addresses(slice, port_name, "TCP"))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| reqwest::Client::builder().no_proxy().http1_only().build().unwrap_or_default())
}

pub(super) async fn forward(
    slices: &Store<EndpointSlice>,
    route: &Route,
    port_name: &str,
    request: Request,
) -> Response {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let endpoints = ready_endpoints(&slices.state(), &route.namespace, &route.name, port_name);
    if endpoints.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("service {}/{} has no ready endpoint\n", route.namespace, route.name),
        )
            .into_response();
    }
    let addr = endpoints[NEXT.fetch_add(1, Ordering::Relaxed) % endpoints.len()];
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing = client()
        .request(parts.method.clone(), format!("http://{addr}{path}"))
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name.as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    match outgoing.send().await {
        Ok(upstream) => {
            let mut response = Response::builder().status(upstream.status());
            for (name, value) in upstream.headers() {
                if !is_hop_by_hop(name.as_str()) {
                    response = response.header(name, value);
                }
            }
            let body = Body::from_stream(upstream.bytes_stream().map_err(std::io::Error::other));
            response.body(body).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => {
            tracing::debug!(%addr, error = %e, "service request failed");
            (StatusCode::BAD_GATEWAY, format!("service {}/{}: cannot reach {addr}\n", route.namespace, route.name))
                .into_response()
        }
    }
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_endpoints_of_the_named_port() {
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.1.0.2"], "conditions": {"ready": true}},
                {"addresses": ["10.1.0.3"], "conditions": {"ready": false}}
            ]
        }))
        .unwrap();
        let slices = [std::sync::Arc::new(slice)];
        assert_eq!(ready_endpoints(&slices, "default", "web", "http"), vec!["10.1.0.2:8080".parse().unwrap()]);
        assert!(ready_endpoints(&slices, "default", "web", "").is_empty());
        assert!(ready_endpoints(&slices, "other", "web", "http").is_empty());
    }
}
