//! Malformed requests against a real server over TLS: a property test (proptest) sends thousands of
//! requests with mutated paths and methods, bad query options (selectors, limits,
//! resourceVersions, continue tokens), wrong or garbage content types and bodies (truncated JSON
//! and YAML, other kinds, deep nesting, huge numbers, invalid UTF-8, duplicate keys, garbage
//! patches) and bad credentials. Every answer that is not a success must be a Kubernetes `Status`
//! (kind Status, status Failure, a reason, code equal to the HTTP status), a 5xx only as
//! InternalError without internals; the server must never panic, must still be alive and ready
//! afterwards, and kubectl must still read every object of the kinds written.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Cluster;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

/// Requests per proptest case and cases: 25 x 200 = 5,000 requests.
const BATCH: usize = 200;
const CASES: u32 = 25;
/// Requests in flight at once.
const IN_FLIGHT: usize = 8;

#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    query: String,
    content_type: Option<String>,
    body: Vec<u8>,
    auth: Auth,
}

#[derive(Debug, Clone, Copy)]
enum Auth {
    Admin,
    None,
    WrongToken,
    Garbage,
}

const PATHS: &[&str] = &[
    "/api/v1/namespaces/default/pods",
    "/api/v1/namespaces/default/pods/web",
    "/api/v1/namespaces/default/pods/web/status",
    "/api/v1/namespaces/default/pods/web/log",
    "/api/v1/namespaces/default/pods/web/binding",
    "/api/v1/namespaces/default/pods/web/eviction",
    "/api/v1/pods",
    "/api/v1/namespaces/default/services",
    "/api/v1/namespaces/default/services/web",
    "/api/v1/namespaces/default/configmaps",
    "/api/v1/namespaces/default/configmaps/cm",
    "/api/v1/namespaces/default/secrets",
    "/api/v1/namespaces/default/serviceaccounts/default/token",
    "/api/v1/namespaces",
    "/api/v1/namespaces/fuzz",
    "/api/v1/nodes",
    "/api/v1/nodes/nope",
    "/api/v1/namespaces/default/events",
    "/api/v1/namespaces/default/resourcequotas",
    "/api/v1/namespaces/default/limitranges",
    "/apis/apps/v1/namespaces/default/deployments",
    "/apis/apps/v1/namespaces/default/deployments/web",
    "/apis/apps/v1/namespaces/default/deployments/web/scale",
    "/apis/apps/v1/namespaces/default/deployments/web/status",
    "/apis/apps/v1/deployments",
    "/apis/batch/v1/namespaces/default/jobs",
    "/apis/batch/v1/namespaces/default/cronjobs",
    "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    "/apis/authorization.k8s.io/v1/subjectaccessreviews",
    "/apis/authentication.k8s.io/v1/tokenreviews",
    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
    "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
    "/apis/node.k8s.io/v1/runtimeclasses",
    "/apis/wharf.dev/v1/namespaces/default/functions",
    "/apis/widgets.example.com/v1/widgets",
    "/api/v2/pods",
    "/api/v1/namespaces/default/pods/web/exec2",
];

const OBJECTS: &[&str] = &[
    r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"busybox","resources":{"limits":{"cpu":"500m","memory":"64Mi"}},"ports":[{"containerPort":80}]}]}}"#,
    r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}"#,
    r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"type":"NodePort","selector":{"app":"web"},"ports":[{"port":80,"targetPort":8080}]}}"#,
    r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"},"data":{"a":"b"}}"#,
    r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"k":"dmFsdWU="}}"#,
    r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"r"},"rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get"]}]}"#,
    r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"verb":"get","resource":"pods"}}}"#,
    r#"{"apiVersion":"v1","kind":"ResourceQuota","metadata":{"name":"q"},"spec":{"hard":{"pods":"10"}}}"#,
    r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":600}}"#,
    r#"{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web"},"spec":{"replicas":3}}"#,
];

const YAML: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '3600']\n";

/// Query values that are wrong in some way for the option they go with.
fn bad_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("99999999999999999999999999".to_string()),
        Just("1e400".to_string()),
        Just("abc".to_string()),
        Just("%ZZ".to_string()),
        Just("%FF%FE".to_string()),
        Just("%00".to_string()),
        Just("a%3Db%2C%21c".to_string()),
        Just("app+in+(a,b".to_string()),
        Just("app%20notin%20()".to_string()),
        Just("!!a".to_string()),
        Just("a==b==c".to_string()),
        Just("metadata.name%3Dx%2Cspec.nope%3Dy".to_string()),
        Just("spec.nodeName%3D%5C".to_string()),
        Just("eyJydiI6LTEsInN0YXJ0IjoiXHUwMDAwIn0".to_string()),
        Just("eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6OTk5OTk5OTk5OTk5OTk5OTl9".to_string()),
        Just("not-base64!!".to_string()),
        "[a-zA-Z0-9%=,!()<>._~-]{0,40}",
        "\\PC{0,20}".prop_map(|s| percent(&s)),
    ]
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn query() -> impl Strategy<Value = String> {
    let option = prop_oneof![
        Just("labelSelector"),
        Just("fieldSelector"),
        Just("limit"),
        Just("continue"),
        Just("resourceVersion"),
        Just("resourceVersionMatch"),
        Just("timeoutSeconds"),
        Just("dryRun"),
        Just("fieldValidation"),
        Just("fieldManager"),
        Just("propagationPolicy"),
        Just("gracePeriodSeconds"),
        Just("allowWatchBookmarks"),
        Just("tailLines"),
        Just("sinceSeconds"),
        Just("limitBytes"),
        Just("container"),
        Just("includeObject"),
        Just("pretty"),
        Just("force"),
        Just("watch"),
        Just("%ZZ"),
    ];
    prop::collection::vec((option, bad_value()), 0..5).prop_map(|pairs| {
        // A successful watch answers a stream; only a wrong watch value is interesting here.
        let pairs = pairs.into_iter().map(|(k, v)| if k == "watch" { (k, format!("x{v}")) } else { (k, v) });
        pairs.map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
    })
}

fn path() -> impl Strategy<Value = String> {
    let base = prop::sample::select(PATHS);
    let segment = prop_oneof![
        Just("..".to_string()),
        Just("%2e%2e".to_string()),
        Just("%00".to_string()),
        Just("%FF".to_string()),
        Just("".to_string()),
        Just("status".to_string()),
        Just("scale".to_string()),
        Just("proxy".to_string()),
        Just("UPPER_case".to_string()),
        Just("a".repeat(300)),
        "[a-z0-9.-]{1,12}",
        "\\PC{1,8}".prop_map(|s| percent(&s)),
    ];
    (base, 0..4usize, prop::collection::vec(segment, 0..3)).prop_map(|(base, mode, extra)| {
        let mut parts: Vec<String> = base.split('/').map(str::to_string).collect();
        match mode {
            // Unchanged, or with segments appended.
            0 => {}
            1 => parts.extend(extra),
            // A segment replaced (never the leading /api or /apis, so it stays an API path).
            _ => {
                for (i, s) in extra.into_iter().enumerate() {
                    let at = 2 + (i * 3 + mode) % (parts.len() - 2).max(1);
                    if at < parts.len() {
                        parts[at] = s;
                    }
                }
            }
        }
        parts.join("/")
    })
}

fn nested(depth: usize, open: &str, close: &str, inner: &str) -> Vec<u8> {
    [open.repeat(depth), inner.to_string(), close.repeat(depth)].concat().into_bytes()
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let object = prop::sample::select(OBJECTS);
    prop_oneof![
        Just(Vec::new()),
        // Truncated JSON and YAML.
        (object.clone(), any::<prop::sample::Index>()).prop_map(|(o, i)| o.as_bytes()[..i.index(o.len())].to_vec()),
        any::<prop::sample::Index>().prop_map(|i| YAML.as_bytes()[..i.index(YAML.len())].to_vec()),
        // A whole object (of the path's kind or another).
        object.clone().prop_map(|o| o.as_bytes().to_vec()),
        Just(YAML.as_bytes().to_vec()),
        // Deep nesting, as JSON arrays, objects and YAML flow sequences.
        (1usize..20_000).prop_map(|d| nested(d, "[", "]", "")),
        (1usize..20_000).prop_map(|d| nested(d, "{\"a\":", "}", "1")),
        (1usize..5_000).prop_map(|d| [b"{\"metadata\":".to_vec(), nested(d, "{\"x\":", "}", "1"), b"}".to_vec()].concat()),
        (1usize..20_000).prop_map(|d| nested(d, "- ", "", "x\n")),
        (1usize..20_000).prop_map(|d| nested(d, "[", "]", "")).prop_map(|mut b| {
            b.splice(0..0, b"spec: ".iter().copied());
            b
        }),
        // Huge and odd numbers where the schema wants integers or quantities.
        prop_oneof![
            Just("1e400"),
            Just("-1e400"),
            Just("123456789012345678901234567890"),
            Just("-9223372036854775809"),
            Just("18446744073709551616"),
            Just("0.0000000000000000000001"),
            Just("-0"),
            Just("\"1e1000000000\""),
            Just("\"9999999999999999999999Ei\""),
            Just("\"-1m\""),
            Just("NaN"),
        ]
        .prop_map(|n| format!(
            r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"web","generation":{n}}},"spec":{{"replicas":{n},"selector":{{"matchLabels":{{"app":"web"}}}},"template":{{"metadata":{{"labels":{{"app":"web"}}}},"spec":{{"terminationGracePeriodSeconds":{n},"containers":[{{"name":"c","image":"busybox","resources":{{"limits":{{"cpu":{n},"memory":{n}}}}},"ports":[{{"containerPort":{n}}}]}}]}}}}}}}}"#
        ).into_bytes()),
        // Invalid UTF-8 inside strings and keys.
        (object.clone(), any::<prop::sample::Index>(), prop::collection::vec(0x80u8..=0xff, 1..4)).prop_map(|(o, i, bad)| {
            let mut b = o.as_bytes().to_vec();
            let at = i.index(b.len());
            b.splice(at..at, bad);
            b
        }),
        // Duplicate keys.
        Just(br#"{"apiVersion":"v1","kind":"ConfigMap","kind":"Pod","metadata":{"name":"a","name":"b"},"data":{"k":"1","k":"2"}}"#.to_vec()),
        Just(b"apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata: {name: a}\n".to_vec()),
        // Wrong types everywhere.
        Just(br#"{"apiVersion":"v1","kind":"Pod","metadata":[],"spec":{"containers":"c"}}"#.to_vec()),
        Just(br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":7,"labels":{"a":[1]}},"spec":{"containers":[{"name":{},"image":null,"ports":[{"containerPort":"http"}],"env":[{"name":1}]}]}}"#.to_vec()),
        Just(br#"{"apiVersion":7,"kind":["Pod"]}"#.to_vec()),
        Just(b"null".to_vec()),
        Just(b"[]".to_vec()),
        Just(b"\"a string\"".to_vec()),
        Just(b"--- !!binary aGVsbG8=\n".to_vec()),
        Just(b"a: &a [*a]\n".to_vec()),
        Just(b"a: &x {b: *x}\n".to_vec()),
        Just(b"\xef\xbb\xbf{}".to_vec()),
        // Garbage patches: JSON patch operations, strategic merge directives.
        Just(br#"[{"op":"move","from":"/spec","path":"/spec/x"}]"#.to_vec()),
        Just(br#"[{"op":"add","path":"/metadata/labels/~2","value":1},{"op":"nope"}]"#.to_vec()),
        Just(br#"[{"op":"test","path":"/","value":{}},{"op":"remove","path":""}]"#.to_vec()),
        Just(br#"{"$patch":"delete"}"#.to_vec()),
        Just(br#"{"$patch":"explode","spec":{"$retainKeys":"x","containers":[{"$patch":"delete"}]}}"#.to_vec()),
        Just(br#"{"spec":{"$setElementOrder/containers":[{"nope":1},"x"],"containers":[{"name":null}]},"metadata":{"$deleteFromPrimitiveList/finalizers":{"a":1}}}"#.to_vec()),
        Just(br#"{"metadata":{"resourceVersion":"-1"},"spec":{"replicas":-3}}"#.to_vec()),
        // Random bytes.
        prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// Requests that get past routing and authentication to decoding, defaulting, admission and
/// validation: a write of a body to a real resource path with a matching content type.
fn aimed_request() -> impl Strategy<Value = Request> {
    let write = prop_oneof![
        (
            Just("POST"),
            prop::sample::select(COLLECTIONS),
            prop_oneof![Just("application/json"), Just("application/yaml")]
        ),
        (
            Just("PUT"),
            prop::sample::select(OBJECT_PATHS),
            prop_oneof![Just("application/json"), Just("application/yaml")]
        ),
        (
            Just("PATCH"),
            prop::sample::select(OBJECT_PATHS),
            prop_oneof![
                Just("application/merge-patch+json"),
                Just("application/strategic-merge-patch+json"),
                Just("application/json-patch+json"),
            ]
        ),
    ];
    let query = prop_oneof![3 => Just(String::new()), 1 => query()];
    (write, query, body()).prop_map(|((method, path, content_type), query, body)| Request {
        method: method.to_string(),
        path: path.to_string(),
        query,
        content_type: Some(content_type.to_string()),
        body,
        auth: Auth::Admin,
    })
}

/// Collections a body can be created in, and objects that exist (made by the test first).
const COLLECTIONS: &[&str] = &[
    "/api/v1/namespaces/default/pods",
    "/api/v1/namespaces/default/services",
    "/api/v1/namespaces/default/configmaps",
    "/api/v1/namespaces/default/secrets",
    "/api/v1/namespaces/default/resourcequotas",
    "/api/v1/namespaces/default/limitranges",
    "/api/v1/namespaces",
    "/apis/apps/v1/namespaces/default/deployments",
    "/apis/batch/v1/namespaces/default/cronjobs",
    "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    "/apis/authorization.k8s.io/v1/subjectaccessreviews",
    "/apis/authentication.k8s.io/v1/tokenreviews",
    "/api/v1/namespaces/default/serviceaccounts/default/token",
];
const OBJECT_PATHS: &[&str] = &[
    "/apis/apps/v1/namespaces/default/deployments/web",
    "/apis/apps/v1/namespaces/default/deployments/web/scale",
    "/apis/apps/v1/namespaces/default/deployments/web/status",
    "/api/v1/namespaces/default/configmaps/cm",
    "/api/v1/namespaces/default/services/web",
    "/api/v1/namespaces/default/pods/web",
    "/api/v1/namespaces/default/pods/web/status",
];

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![any_request(), aimed_request()]
}

fn any_request() -> impl Strategy<Value = Request> {
    let method = prop_oneof![
        4 => Just("GET"),
        4 => Just("POST"),
        3 => Just("PUT"),
        4 => Just("PATCH"),
        2 => Just("DELETE"),
        1 => Just("HEAD"),
        1 => Just("OPTIONS"),
        1 => Just("PROPFIND"),
        1 => Just("BREW"),
    ];
    let content_type = prop_oneof![
        Just(None),
        Just(Some("application/json")),
        Just(Some("application/yaml")),
        Just(Some("application/vnd.kubernetes.protobuf")),
        Just(Some("application/merge-patch+json")),
        Just(Some("application/strategic-merge-patch+json")),
        Just(Some("application/json-patch+json")),
        Just(Some("application/apply-patch+yaml")),
        Just(Some("application/json; charset=utf-16")),
        Just(Some("text/plain")),
        Just(Some("*/*")),
        Just(Some(";;;")),
        Just(Some("application/\u{7f}")),
    ];
    let auth = prop_oneof![
        12 => Just(Auth::Admin),
        1 => Just(Auth::None),
        1 => Just(Auth::WrongToken),
        1 => Just(Auth::Garbage),
    ];
    (method, path(), query(), content_type, body(), auth).prop_map(|(method, path, query, content_type, body, auth)| {
        Request { method: method.to_string(), path, query, content_type: content_type.map(str::to_string), body, auth }
    })
}

/// A status and body, or why there was no answer.
type Answer = Result<(u16, Vec<u8>), String>;

/// What was answered, for the figures.
#[derive(Default)]
struct Tally {
    sent: usize,
    by_status: BTreeMap<u16, usize>,
    by_reason: BTreeMap<String, usize>,
    /// The slowest answers: seconds, status and the request.
    slowest: Vec<(f64, String)>,
}

struct Client {
    http: reqwest::Client,
    /// Without kept-alive connections: a request the pooled client could not send because the
    /// server had closed the connection it reused (after an answer to a request whose body it did
    /// not read) goes again on a fresh one. A handler that panics fails both times.
    fresh: reqwest::Client,
    url: String,
    token: String,
    retried: std::sync::atomic::AtomicUsize,
}

impl Client {
    async fn send(&self, r: &Request) -> Result<(u16, Vec<u8>), String> {
        match self.send_with(&self.http, r).await {
            Err(e) if e.starts_with("no answer") => {
                self.retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.send_with(&self.fresh, r).await
            }
            answer => answer,
        }
    }

    async fn send_with(&self, http: &reqwest::Client, r: &Request) -> Result<(u16, Vec<u8>), String> {
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).map_err(|e| format!("bad method: {e}"))?;
        let url = if r.query.is_empty() {
            format!("{}{}", self.url, r.path)
        } else {
            format!("{}{}?{}", self.url, r.path, r.query)
        };
        let mut builder = http.request(method, &url).timeout(Duration::from_secs(30));
        if let Some(ct) = &r.content_type
            && let Ok(value) = reqwest::header::HeaderValue::from_str(ct)
        {
            builder = builder.header(reqwest::header::CONTENT_TYPE, value);
        }
        builder = match r.auth {
            Auth::Admin => builder.bearer_auth(&self.token),
            Auth::None => builder,
            Auth::WrongToken => builder.bearer_auth(format!("{}x", self.token)),
            Auth::Garbage => builder.header(reqwest::header::AUTHORIZATION, "Bearer"),
        };
        let response = builder.body(r.body.clone()).send().await.map_err(|e| format!("no answer: {e:?}"))?;
        let status = response.status().as_u16();
        if response.status().is_success() || r.method == "HEAD" {
            // A success may be a stream (a log or a watch); its body is not checked.
            return Ok((status, Vec::new()));
        }
        let body = response.bytes().await.map_err(|e| format!("answer {status} cut short: {e:?}"))?;
        Ok((status, body.to_vec()))
    }
}

/// What is wrong with an answer, if anything.
fn check(method: &str, status: u16, body: &[u8]) -> Result<Option<String>, String> {
    if (200..300).contains(&status) || method == "HEAD" {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(body);
    let status_obj: Value =
        serde_json::from_slice(body).map_err(|e| format!("answer {status} is not JSON ({e}): {text:.300}"))?;
    let reason = status_obj["reason"].as_str().unwrap_or_default();
    let well_formed = status_obj["kind"] == "Status"
        && status_obj["apiVersion"] == "v1"
        && status_obj["status"] == "Failure"
        && !reason.is_empty()
        && status_obj["code"] == json!(status);
    if !well_formed {
        return Err(format!("answer {status} is not a proper Failure Status: {text:.400}"));
    }
    if status >= 500 {
        let message = status_obj["message"].as_str().unwrap_or_default();
        let internals = ["::", ".rs:", "panicked", "backtrace", "/work/", "/src/", "/root/", "RUST_"];
        if reason != "InternalError" {
            return Err(format!("answer {status} with reason {reason} (5xx only as InternalError): {text:.400}"));
        }
        if let Some(leak) = internals.iter().find(|i| message.contains(*i)) {
            return Err(format!("answer {status} shows internals ({leak:?}): {text:.400}"));
        }
    }
    Ok(Some(reason.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_requests_get_a_status_and_never_crash_the_server() {
    // The server's stderr goes to a file, to look for panics: a request that panicked its handler
    // may still pass if the state changed before it was sent again on a fresh connection.
    let cluster = Cluster::start_logged(&[], "warn");
    let http = reqwest::Client::builder().use_preconfigured_tls(tls_config(&cluster)).build().expect("HTTP client");
    let fresh = reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(&cluster))
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client");
    let client = Arc::new(Client {
        http,
        fresh,
        url: cluster.url.clone(),
        token: cluster.admin_token(),
        retried: Default::default(),
    });
    // Some objects for the paths to find.
    for object in [OBJECTS[0], OBJECTS[1], OBJECTS[2], OBJECTS[3]] {
        cluster.apply(object);
    }

    let tally = Arc::new(Mutex::new(Tally::default()));
    let runtime = tokio::runtime::Handle::current();
    let started = Instant::now();
    let outcome = {
        let (client, tally) = (client.clone(), tally.clone());
        tokio::task::spawn_blocking(move || {
            // Every batch is sent and every wrong answer kept, so one run shows all the kinds of
            // failure at once (no shrinking: the request is printed whole).
            let config = Config { cases: CASES, failure_persistence: None, max_shrink_iters: 0, ..Config::default() };
            let mut runner = TestRunner::new(config);
            let failures = Mutex::new(Vec::new());
            let outcome = runner.run(&prop::collection::vec(request(), BATCH), |batch| {
                failures.lock().unwrap().extend(runtime.block_on(send_batch(&client, &tally, batch)));
                Ok(())
            });
            outcome.map_err(|e| e.to_string()).and_then(|()| {
                let failures = failures.into_inner().unwrap();
                // One of each kind: the first line of the message without the numbers in it.
                let mut seen = std::collections::BTreeSet::new();
                let distinct: Vec<&String> = failures
                    .iter()
                    .filter(|f| seen.insert(f.lines().next().unwrap_or_default().chars().take(40).collect::<String>()))
                    .take(12)
                    .collect();
                if failures.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{} wrong answers; the different kinds:\n{}",
                        failures.len(),
                        distinct.iter().map(|f| f.as_str()).collect::<Vec<_>>().join("\n")
                    ))
                }
            })
        })
        .await
        .expect("the property test runs")
    };
    let elapsed = started.elapsed();

    // The server is still there and ready.
    let alive = std::path::Path::new(&format!("/proc/{}", cluster.pid())).exists();
    let ready = client.http.get(format!("{}/readyz", cluster.url)).send().await.map(|r| r.status().as_u16());
    let tally = tally.lock().unwrap();
    println!(
        "malformed: {} requests ({} sent again on a fresh connection) in {:.1} s ({:.0}/s); answers by status: {:?}; by reason: {:?}",
        tally.sent,
        client.retried.load(std::sync::atomic::Ordering::Relaxed),
        elapsed.as_secs_f64(),
        tally.sent as f64 / elapsed.as_secs_f64(),
        tally.by_status,
        tally.by_reason
    );
    for (seconds, request) in &tally.slowest {
        println!("  slow: {seconds:.2} s: {request}");
    }
    if let Err(e) = outcome {
        panic!("{e}");
    }
    assert!(alive, "the server process died during the malformed requests");
    let log = cluster.log_text();
    let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked at")).collect();
    assert!(panics.is_empty(), "the server panicked on malformed requests:\n{}", panics.join("\n"));
    assert_eq!(ready.ok(), Some(200), "the server answers /readyz after the malformed requests");
    every_object_still_reads(&cluster);
}

/// No accepted request corrupted what is stored: kubectl still reads every object of the kinds
/// the requests wrote, and each decodes as the type the controllers use.
fn every_object_still_reads(cluster: &Cluster) {
    use k8s_openapi::api::{apps::v1::Deployment, batch::v1::CronJob, core::v1::*, rbac::v1::*};
    let kinds = "pods,deployments,services,configmaps,secrets,resourcequotas,limitranges,cronjobs,roles,\
                 rolebindings,clusterroles,namespaces";
    let listed = cluster.kubectl(&["get", kinds, "-A", "-o", "json"]);
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(listed.status.success(), "kubectl cannot read the objects after the malformed requests: {stderr}");
    let list: Value = serde_json::from_slice(&listed.stdout).expect("kubectl prints a JSON list");
    let items = list["items"].as_array().expect("a list of items");
    for item in items {
        let decoded = match item["kind"].as_str() {
            Some("Pod") => serde_json::from_value::<Pod>(item.clone()).map(drop),
            Some("Deployment") => serde_json::from_value::<Deployment>(item.clone()).map(drop),
            Some("Service") => serde_json::from_value::<Service>(item.clone()).map(drop),
            Some("ConfigMap") => serde_json::from_value::<ConfigMap>(item.clone()).map(drop),
            Some("Secret") => serde_json::from_value::<Secret>(item.clone()).map(drop),
            Some("ResourceQuota") => serde_json::from_value::<ResourceQuota>(item.clone()).map(drop),
            Some("LimitRange") => serde_json::from_value::<LimitRange>(item.clone()).map(drop),
            Some("Namespace") => serde_json::from_value::<Namespace>(item.clone()).map(drop),
            Some("CronJob") => serde_json::from_value::<CronJob>(item.clone()).map(drop),
            Some("Role") => serde_json::from_value::<Role>(item.clone()).map(drop),
            Some("RoleBinding") => serde_json::from_value::<RoleBinding>(item.clone()).map(drop),
            Some("ClusterRole") => serde_json::from_value::<ClusterRole>(item.clone()).map(drop),
            _ => panic!("a stored object of a kind not asked for, or without one: {item:.300}"),
        };
        if let Err(e) = decoded {
            panic!("a stored object no longer decodes as its type ({e}): {item:.600}");
        }
    }
    println!("malformed: afterwards kubectl read all {} objects of the kinds written", items.len());
}

fn tls_config(cluster: &Cluster) -> rustls::ClientConfig {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let ca = std::fs::read(cluster.data_dir().join("pki/ca.crt")).expect("the cluster CA");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.expect("a PEM certificate")).expect("a CA certificate");
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Sends one batch with [`IN_FLIGHT`] requests at a time; the wrong answers.
async fn send_batch(client: &Arc<Client>, tally: &Arc<Mutex<Tally>>, batch: Vec<Request>) -> Vec<String> {
    use futures::StreamExt;
    let answers: Vec<(Request, Answer, f64)> = futures::stream::iter(batch)
        .map(|r| {
            let client = client.clone();
            async move {
                let started = Instant::now();
                let answer = client.send(&r).await;
                (r, answer, started.elapsed().as_secs_f64())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let mut failures = Vec::new();
    let mut tally = tally.lock().unwrap();
    for (r, answer, seconds) in answers {
        tally.sent += 1;
        let status = answer.as_ref().map(|a| a.0).unwrap_or_default();
        let body = String::from_utf8_lossy(&r.body[..r.body.len().min(60)]).into_owned();
        tally.slowest.push((
            seconds,
            format!("{status} {} {} {:?} ({} bytes) {body:?}", r.method, r.path, r.content_type, r.body.len()),
        ));
        tally.slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
        tally.slowest.truncate(5);
        let verdict = answer.and_then(|(status, body)| {
            *tally.by_status.entry(status).or_default() += 1;
            check(&r.method, status, &body)
        });
        match verdict {
            Ok(Some(reason)) => *tally.by_reason.entry(reason).or_default() += 1,
            Ok(None) => {}
            Err(e) => {
                let body = String::from_utf8_lossy(&r.body[..r.body.len().min(200)]).into_owned();
                failures.push(format!(
                    "{e}\n  request: {} {}?{} content-type {:?} auth {:?} body ({} bytes) {body:?}",
                    r.method,
                    r.path,
                    r.query,
                    r.content_type,
                    r.auth,
                    r.body.len()
                ));
            }
        }
    }
    failures
}
