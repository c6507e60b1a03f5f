//! The gateway's routing table: Functions by `spec.route.path` (default `/NAME`) and
//! `spec.route.host`, Services by their `wharf.dev/route-path` and `wharf.dev/route-host`
//! annotations. A path prefix matches whole segments (`/hello` matches `/hello` and
//! `/hello/x`, not `/helloo`); the longest matching prefix wins, a route naming the request's
//! host before one for any host, a Function before a Service at the same length.

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::DynamicObject;

/// Service annotation: the path prefix the gateway routes to the Service.
pub const ROUTE_PATH_ANNOTATION: &str = "wharf.dev/route-path";
/// Service annotation: the Host the route is for (default: any).
pub const ROUTE_HOST_ANNOTATION: &str = "wharf.dev/route-host";
/// Function annotation: how long one request may take (`500ms`, `10s`, `2m`); default 30 s.
pub const TIMEOUT_ANNOTATION: &str = "wharf.dev/timeout";
/// Function annotation: requests one node serves at once; more wait (up to the timeout,
/// then 429). Default [`DEFAULT_CONCURRENCY`].
pub const CONCURRENCY_ANNOTATION: &str = "wharf.dev/concurrency";

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_CONCURRENCY: usize = 1000;

/// What a route leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Function(FunctionTarget),
    /// A Service; traffic goes to its first port, named so (empty: unnamed).
    Service {
        port_name: String,
    },
}

/// What the gateway needs of a Function's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionTarget {
    pub image: String,
    pub runtime_class: Option<String>,
    /// Port of a Linux-image function (default 8080).
    pub port: u16,
    pub memory_bytes: Option<u64>,
    pub timeout: Duration,
    pub concurrency: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub namespace: String,
    pub name: String,
    pub path: String,
    pub host: Option<String>,
    pub target: Target,
}

/// The route of a Function object (`None` without a name or image).
pub fn function_route(f: &DynamicObject) -> Option<Route> {
    let namespace = f.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = f.metadata.name.clone()?;
    let spec = f.data.get("spec")?;
    let image = spec.get("image")?.as_str()?.to_string();
    let route = spec.get("route");
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).filter(|s| !s.is_empty()).map(str::to_string);
    let path = text(route.and_then(|r| r.get("path"))).unwrap_or_else(|| format!("/{name}"));
    let host = text(route.and_then(|r| r.get("host")));
    let annotation = |key: &str| f.metadata.annotations.as_ref().and_then(|a| a.get(key));
    let memory_bytes =
        spec.pointer("/resources/limits/memory").and_then(|q| q.as_str()).and_then(crate::worker::quantity_bytes);
    let target = FunctionTarget {
        image,
        runtime_class: text(spec.get("runtimeClassName")),
        port: spec.get("port").and_then(|p| p.as_u64()).and_then(|p| u16::try_from(p).ok()).unwrap_or(8080),
        memory_bytes,
        timeout: annotation(TIMEOUT_ANNOTATION).and_then(|t| parse_duration(t)).unwrap_or(DEFAULT_TIMEOUT),
        concurrency: annotation(CONCURRENCY_ANNOTATION)
            .and_then(|c| c.parse().ok())
            .filter(|&c| c > 0)
            .unwrap_or(DEFAULT_CONCURRENCY),
    };
    Some(Route { namespace, name, path: normalize(&path), host, target: Target::Function(target) })
}

/// The route of a Service with a route annotation.
pub fn service_route(s: &Service) -> Option<Route> {
    let annotations = s.metadata.annotations.as_ref()?;
    let path = annotations.get(ROUTE_PATH_ANNOTATION)?;
    Some(Route {
        namespace: s.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        name: s.metadata.name.clone()?,
        path: normalize(path),
        host: annotations.get(ROUTE_HOST_ANNOTATION).filter(|h| !h.is_empty()).cloned(),
        target: Target::Service {
            port_name: s.spec.as_ref().and_then(|spec| spec.ports.as_ref()?.first()?.name.clone()).unwrap_or_default(),
        },
    })
}

/// `/x/` → `/x`; a missing leading `/` is added; the root `/` becomes `""` (covers every path).
fn normalize(path: &str) -> String {
    let trimmed = path.trim().trim_end_matches('/');
    if trimmed.is_empty() || trimmed.starts_with('/') { trimmed.to_string() } else { format!("/{trimmed}") }
}

/// Whether `prefix` (normalized) covers `path` at a segment boundary.
fn covers(prefix: &str, path: &str) -> bool {
    prefix.is_empty() || path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// The route for a request to `host` (port removed, compared case-insensitively) and `path`.
pub fn select<'a>(routes: &'a [Route], host: Option<&str>, path: &str) -> Option<&'a Route> {
    let host = host.map(|h| {
        h.rsplit_once(':').map_or(h, |(name, port)| if port.bytes().all(|b| b.is_ascii_digit()) { name } else { h })
    });
    routes
        .iter()
        .filter(|r| covers(&r.path, path))
        .filter(|r| r.host.as_deref().is_none_or(|want| host.is_some_and(|h| h.eq_ignore_ascii_case(want))))
        .max_by_key(|r| (r.path.len(), r.host.is_some(), matches!(r.target, Target::Function(_))))
}

/// A duration as `1500ms`, `10s`, `2m` or a number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.trim().parse().ok()?;
    Duration::try_from_secs_f64(value * scale).ok().filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, path: &str, host: Option<&str>, function: bool) -> Route {
        let target = if function {
            Target::Function(FunctionTarget {
                image: "x".into(),
                runtime_class: None,
                port: 8080,
                memory_bytes: None,
                timeout: DEFAULT_TIMEOUT,
                concurrency: DEFAULT_CONCURRENCY,
            })
        } else {
            Target::Service { port_name: String::new() }
        };
        Route {
            namespace: "default".into(),
            name: name.into(),
            path: normalize(path),
            host: host.map(Into::into),
            target,
        }
    }

    #[test]
    fn longest_prefix_on_segments_wins() {
        let routes = [
            route("root", "/", None, true),
            route("hello", "/hello", None, true),
            route("deep", "/hello/deep/", None, true),
        ];
        let name = |path: &str| select(&routes, None, path).map(|r| r.name.as_str());
        assert_eq!(name("/hello"), Some("hello"));
        assert_eq!(name("/hello/x"), Some("hello"));
        assert_eq!(name("/hello/deep/y"), Some("deep"));
        assert_eq!(name("/helloo"), Some("root"));
        assert_eq!(select(&routes[1..], None, "/other"), None);
    }

    #[test]
    fn host_routes_first_and_only_for_their_host() {
        let routes = [route("any", "/api", None, true), route("site", "/api", Some("Example.com"), false)];
        assert_eq!(select(&routes, Some("example.com:8080"), "/api").unwrap().name, "site");
        assert_eq!(select(&routes, Some("other"), "/api").unwrap().name, "any");
        assert_eq!(select(&routes[1..], None, "/api"), None);
    }

    #[test]
    fn function_spec_fields() {
        let f: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "wharf.dev/v1", "kind": "Function",
            "metadata": {"name": "hello", "namespace": "ns", "annotations": {"wharf.dev/timeout": "1500ms"}},
            "spec": {"image": "hello:v1", "resources": {"limits": {"memory": "64Mi"}}}
        }))
        .unwrap();
        let r = function_route(&f).unwrap();
        assert_eq!((r.path.as_str(), r.host.as_deref()), ("/hello", None));
        let Target::Function(t) = r.target else { panic!() };
        assert_eq!(t.memory_bytes, Some(64 << 20));
        assert_eq!(t.timeout, Duration::from_millis(1500));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("x"), None);
    }
}
