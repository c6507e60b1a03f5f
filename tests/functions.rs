//! Wasm Functions through the node's gateway, as a user drives them with `wharf fn`: deploy
//! `samples/out/http-hello.wasm` at `/hello` and call it through the gateway the Node announces,
//! invoke, list, read its logs, remove it; unknown routes answer 404. A trapping and a looping
//! function (WAT components in tests/fixtures) fail their own requests with 500 and 504 while
//! http-hello, called at the same time, keeps answering 200. A Service annotated
//! `wharf.dev/route-path` is reached through the gateway at its endpoint.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Cluster, wasm_fixture};

/// Runs `wharf ARGS` against the cluster.
fn wharf(cluster: &Cluster, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .env("KUBECONFIG", cluster.kubeconfig())
        .output()
        .expect("wharf runs")
}

fn wharf_ok(cluster: &Cluster, args: &[&str]) -> String {
    let out = wharf(cluster, args);
    assert!(out.status.success(), "wharf {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn wharf_fails(cluster: &Cluster, args: &[&str]) -> String {
    let out = wharf(cluster, args);
    assert!(!out.status.success(), "wharf {args:?} should have failed:\n{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The gateway address the node announces (`wharf.dev/gateway: http://ADDR:PORT`).
fn gateway(cluster: &Cluster) -> String {
    let mut url = String::new();
    let announced = cluster.eventually(Duration::from_secs(30), || {
        let out =
            cluster.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].metadata.annotations.wharf\\.dev/gateway}"]);
        url = String::from_utf8_lossy(&out.stdout).into_owned();
        !url.is_empty()
    });
    assert!(announced, "the node announced no gateway");
    url.trim().trim_start_matches("http://").to_string()
}

/// One HTTP/1.1 request (`Connection: close`); the status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to the gateway {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    (status, body)
}

/// Waits until `path` answers `status` (routes reach the gateway through a watch).
fn wait_status(cluster: &Cluster, addr: &str, path: &str, status: u16) {
    let mut last = (0, String::new());
    let reached = cluster.eventually(Duration::from_secs(30), || {
        last = get(addr, path);
        last.0 == status
    });
    assert!(reached, "{path} never answered {status}; last: {last:?}");
}

#[test]
fn a_wasm_function_answers_through_the_gateway() {
    let cluster = Cluster::start();
    let addr = gateway(&cluster);
    let hello = common::samples_out().join("http-hello.wasm");
    let hello_arg = hello.to_str().unwrap();

    // Errors name the problem.
    let missing = wharf_fails(&cluster, &["fn", "deploy", "x", "--wasm", "/nonexistent/x.wasm"]);
    assert!(missing.contains("file not found"), "{missing}");
    let module = wasm_fixture(cluster.data_dir(), "hello");
    let not_proxy = wharf_fails(&cluster, &["fn", "deploy", "x", "--wasm", module.to_str().unwrap()]);
    assert!(not_proxy.contains("not a component of the wasi:http/proxy world"), "{not_proxy}");

    let deployed = wharf_ok(&cluster, &["fn", "deploy", "hello", "--wasm", hello_arg, "--path", "/hello"]);
    assert!(deployed.contains("function default/hello created"), "{deployed}");

    // The first request on this node pulls and compiles the component.
    let started = Instant::now();
    wait_status(&cluster, &addr, "/hello", 200);
    println!("first answer after deploy: {:?} (includes the route's propagation)", started.elapsed());
    let (status, body) = get(&addr, "/hello/sub?x=1");
    assert_eq!((status, body.as_str()), (200, "hello from wasm\n"));

    let (status, body) = get(&addr, "/nothing-here");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no route"), "{body}");

    // No replicas, nothing running between requests: the first request after idle answers.
    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    assert_eq!(get(&addr, "/hello"), (200, "hello from wasm\n".into()));
    println!("first request after 3 s idle: {:?}", started.elapsed());

    let invoked = wharf_ok(&cluster, &["fn", "invoke", "hello"]);
    assert_eq!(invoked, "hello from wasm\n");
    let invoked = wharf_ok(&cluster, &["fn", "invoke", "hello", "--data", "ping", "--header", "X-Test: 1"]);
    assert_eq!(invoked, "hello from wasm\n");

    let listed = wharf_ok(&cluster, &["fn", "ls"]);
    let row = listed.lines().find(|l| l.starts_with("hello ")).unwrap_or_else(|| panic!("no hello row:\n{listed}"));
    assert!(listed.starts_with("NAME") && row.contains("wasmtime"), "{listed}");
    println!("{listed}");

    // The guest logs one line per request to stderr.
    let logs = wharf_ok(&cluster, &["fn", "logs", "hello"]);
    assert!(logs.contains("stderr GET /hello/sub?x=1"), "{logs}");

    // Redeploying the same file changes nothing; a missing function is named.
    let again = wharf_ok(&cluster, &["fn", "deploy", "hello", "--wasm", hello_arg, "--path", "/hello"]);
    assert!(again.contains("function default/hello updated"), "{again}");
    let unknown = wharf_fails(&cluster, &["fn", "invoke", "nope"]);
    assert!(unknown.contains("function default/nope not found"), "{unknown}");

    // The API server counts what it answered; the node's agent what its gateway served.
    let api = cluster.ok(&["get", "--raw", "/metrics"]);
    let listed = api.lines().find(|l| {
        l.starts_with(r#"apiserver_request_total{verb="LIST",group="wharf.dev",version="v1",resource="functions""#)
    });
    assert!(listed.is_some(), "no LIST of functions counted in the API server's /metrics:\n{api}");
    // The agent serves only the API server: its /metrics is read through the node proxy.
    let node = cluster.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let agent = cluster.ok(&["get", "--raw", &format!("/api/v1/nodes/{}/proxy/metrics", node.trim())]);
    let value = |name: &str| {
        let prefix = format!(r#"{name}{{namespace="default",function="hello"}} "#);
        agent.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse::<f64>().ok())
    };
    let requests = value("wharf_function_requests_total").unwrap_or_else(|| panic!("no request count:\n{agent}"));
    assert!(requests >= 4.0, "{requests} requests counted, at least 4 were made:\n{agent}");
    assert_eq!(value("wharf_function_cold_starts_total"), Some(1.0), "one compile on this node:\n{agent}");
    assert_eq!(value("wharf_function_request_duration_seconds_count"), Some(requests), "{agent}");

    wharf_ok(&cluster, &["fn", "rm", "hello"]);
    wait_status(&cluster, &addr, "/hello", 404);
    let gone = wharf_fails(&cluster, &["fn", "invoke", "hello"]);
    assert!(gone.contains("not found"), "{gone}");
}

#[test]
fn a_trap_or_a_timeout_fails_only_its_own_request() {
    let cluster = Cluster::start();
    let addr = gateway(&cluster);
    let hello = common::samples_out().join("http-hello.wasm");
    let dir = cluster.data_dir();
    let trap = wasm_fixture(dir, "http-trap");
    let looping = wasm_fixture(dir, "http-loop");
    wharf_ok(&cluster, &["fn", "deploy", "hello", "--wasm", hello.to_str().unwrap(), "--path", "/hello"]);
    wharf_ok(&cluster, &["fn", "deploy", "trap", "--wasm", trap.to_str().unwrap(), "--path", "/trap"]);
    wharf_ok(
        &cluster,
        &["fn", "deploy", "spin", "--wasm", looping.to_str().unwrap(), "--path", "/spin", "--timeout", "1s"],
    );
    wait_status(&cluster, &addr, "/hello", 200);
    wait_status(&cluster, &addr, "/trap", 500);
    wait_status(&cluster, &addr, "/spin", 504);

    // All at once: four spinning requests, four trapping ones and a stream of hellos.
    let started = Instant::now();
    std::thread::scope(|s| {
        let spins: Vec<_> = (0..4).map(|_| s.spawn(|| get(&addr, "/spin"))).collect();
        let traps: Vec<_> = (0..4).map(|_| s.spawn(|| get(&addr, "/trap"))).collect();
        let hellos: Vec<_> =
            (0..4).map(|_| s.spawn(|| (0..10).map(|_| get(&addr, "/hello")).collect::<Vec<_>>())).collect();
        for spin in spins {
            let (status, body) = spin.join().unwrap();
            assert_eq!(status, 504, "{body}");
            assert!(body.contains("did not answer within"), "{body}");
        }
        for trap in traps {
            let (status, body) = trap.join().unwrap();
            assert_eq!(status, 500, "{body}");
            assert!(body.contains("unreachable"), "{body}");
        }
        for hello in hellos {
            for answer in hello.join().unwrap() {
                assert_eq!(answer, (200, "hello from wasm\n".into()));
            }
        }
    });
    println!("4 timeouts (1 s), 4 traps and 40 hellos answered in {:?}", started.elapsed());

    // Nothing was left behind: the functions keep answering as before.
    assert_eq!(get(&addr, "/hello").0, 200);
    assert_eq!(get(&addr, "/trap").0, 500);
    let failed = wharf_fails(&cluster, &["fn", "invoke", "trap"]);
    assert!(failed.contains("500"), "{failed}");
}

/// A non-loopback address of this host (endpoint addresses may not be loopback): the source
/// address the kernel picks toward an outside address (no packet is sent).
fn host_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.connect("10.255.255.1:9").expect("this host needs a default route for the service route test");
    socket.local_addr().unwrap().ip()
}

#[test]
fn a_service_with_a_route_annotation_answers_through_the_gateway() {
    let cluster = Cluster::start();
    let addr = gateway(&cluster);
    // The Service's endpoint: a tiny HTTP server of this test on the host's address.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..n]).lines().next().unwrap_or_default().to_string();
            let body = format!("service saw {line}\n");
            let _ =
                write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    let ip = host_address();
    cluster.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations:\n    wharf.dev/route-path: /web\nspec:\n  ports:\n  - name: http\n    port: 80\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n  labels:\n    kubernetes.io/service-name: web\naddressType: IPv4\nports:\n- name: http\n  port: {port}\nendpoints:\n- addresses: [\"{ip}\"]\n  conditions:\n    ready: true\n"
    ));
    wait_status(&cluster, &addr, "/web/x?y=1", 200);
    let (_, body) = get(&addr, "/web/x?y=1");
    assert_eq!(body, "service saw GET /web/x?y=1 HTTP/1.1\n");
    // Not a prefix on a segment boundary: no route.
    assert_eq!(get(&addr, "/webby").0, 404);
    cluster.ok(&["delete", "service", "web"]);
    wait_status(&cluster, &addr, "/web", 404);
}
