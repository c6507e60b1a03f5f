//! The API server's `/metrics`: request counts and latencies in the Prometheus exposition
//! format, named and labelled as kube-apiserver's (`apiserver_request_total{verb,group,version,
//! resource,subresource,scope,component,code}` and `apiserver_request_duration_seconds`), so the
//! dashboards people already have for Kubernetes read them.

use std::time::Duration;

use axum::http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::request::Target;

/// The content type of what [`ApiMetrics::render`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// kube-apiserver's request duration buckets (seconds).
const BUCKETS: [f64; 18] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 2.0, 5.0, 60.0];

/// What a request was, as kube-apiserver labels it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Request {
    verb: &'static str,
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    subresource: &'static str,
    scope: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Answered {
    #[prometheus(flatten)]
    request: Request,
    code: String,
}

/// Counters and histograms of the requests the API server answered.
pub struct ApiMetrics {
    registry: Registry,
    total: Family<Answered, Counter>,
    duration: Family<Request, Histogram, fn() -> Histogram>,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

impl Default for ApiMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let total = Family::<Answered, Counter>::default();
        let duration = Family::<Request, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, API resource and HTTP response code",
            total.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, group, version, resource and subresource",
            duration.clone(),
        );
        ApiMetrics { registry, total, duration }
    }
}

/// kube-apiserver's verb for a request: WATCH and LIST for reads of collections,
/// DELETECOLLECTION, and the HTTP method otherwise.
fn verb(method: &Method, target: &Target, watch: bool) -> &'static str {
    let collection = target.name.is_none();
    match *method {
        Method::GET if watch => "WATCH",
        Method::GET if collection => "LIST",
        Method::DELETE if collection => "DELETECOLLECTION",
        _ => method_name(method),
    }
}

/// The HTTP method's name (`OTHER` for extension methods).
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

impl ApiMetrics {
    /// Counts one answered request. Requests outside the resource API (discovery, OpenAPI, the
    /// registry) are counted with an empty resource.
    pub fn observe(&self, method: &Method, target: Option<&Target>, watch: bool, code: u16, took: Duration) {
        let request = match target {
            Some(t) => Request {
                verb: verb(method, t, watch),
                group: t.resource.group,
                version: t.resource.version,
                resource: t.resource.plural,
                subresource: t.subresource.map(|s| s.name()).unwrap_or_default(),
                scope: match (&t.namespace, &t.name) {
                    (_, Some(_)) => "resource",
                    (Some(_), None) => "namespace",
                    (None, None) => "cluster",
                },
            },
            None => {
                Request { verb: method_name(method), group: "", version: "", resource: "", subresource: "", scope: "" }
            }
        };
        // A watch lasts as long as the client wants: its duration says nothing of latency.
        if !watch {
            self.duration.get_or_create(&request).observe(took.as_secs_f64());
        }
        self.total.get_or_create(&Answered { request, code: code.to_string() }).inc();
    }

    /// Everything counted so far, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::request::parse_path;

    #[test]
    fn requests_are_counted_by_verb_resource_and_code() {
        let metrics = ApiMetrics::default();
        let pods = parse_path("/api/v1/namespaces/default/pods").unwrap().unwrap();
        let pod = parse_path("/api/v1/namespaces/default/pods/web").unwrap().unwrap();
        metrics.observe(&Method::GET, Some(&pods), false, 200, Duration::from_millis(3));
        metrics.observe(&Method::GET, Some(&pods), false, 200, Duration::from_millis(30));
        metrics.observe(&Method::GET, Some(&pods), true, 200, Duration::from_secs(300));
        metrics.observe(&Method::DELETE, Some(&pod), false, 404, Duration::from_millis(1));
        let text = metrics.render();
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
                .to_string()
        };
        assert!(
            line(r#"apiserver_request_total{verb="LIST",group="",version="v1",resource="pods",subresource="",scope="namespace",code="200"}"#)
                .ends_with(" 2")
        );
        assert!(line(r#"apiserver_request_total{verb="WATCH""#).ends_with(" 1"));
        assert!(line(r#"apiserver_request_total{verb="DELETE""#).contains(r#"scope="resource",code="404"}"#));
        // Two LISTs observed, the watch not.
        assert!(line(r#"apiserver_request_duration_seconds_count{verb="LIST""#).ends_with(" 2"));
        assert!(!text.contains(r#"apiserver_request_duration_seconds_count{verb="WATCH""#));
        assert!(line(r#"apiserver_request_duration_seconds_bucket{le="0.005",verb="LIST""#).ends_with(" 1"), "{text}");
    }
}
