//! Service traffic end to end, as root (issue 6, done-when 1): two busybox httpd pods, each
//! serving its own hostname, behind a NodePort Service. Requests to the NodePort on 127.0.0.1 and
//! to the ClusterIP from a third pod spread over both pods, and the Service's DNS name resolves
//! inside a pod. Needs busybox-static, python3 (the sample image) and nftables.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Cluster, busybox_layout};
use serde_json::Value;

const START: Duration = Duration::from_secs(90);
const REQUESTS: usize = 40;

const APP: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox:v1
        command: [sh, -c, "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports:
        - containerPort: 8080
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:v1
    command: [sleep, "3600"]
"#;

fn json(cluster: &Cluster, args: &[&str]) -> Value {
    serde_json::from_str(&cluster.ok(args)).expect("kubectl prints JSON")
}

/// One HTTP GET of `/` at 127.0.0.1:`port`: the body, or what went wrong.
fn get_localhost(port: u16) -> String {
    let attempt = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response.split_once("\r\n\r\n").map(|(_, body)| body.trim().to_string()).unwrap_or(response))
    };
    attempt().unwrap_or_else(|e| format!("error: {e}"))
}

fn count(bodies: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for body in bodies {
        *seen.entry(body).or_insert(0) += 1;
    }
    seen
}

/// The bodies of `REQUESTS` GETs from the client pod (busybox wget: `-T` crashes busybox 1.35,
/// so no timeout flag).
fn get_from_client(cluster: &Cluster, url: &str) -> BTreeMap<String, usize> {
    let script = format!("for i in $(seq {REQUESTS}); do wget -qO- {url} || echo error; done");
    let out = cluster.kubectl(&["exec", "client", "--", "sh", "-c", &script]);
    count(String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()))
}

/// Polls `sample` until every body is one of `pods` and all of them answered, returning the last
/// sample (a Service's endpoints reach the data path a moment after the pods are ready).
fn spread_over(
    pods: &[String],
    what: &str,
    mut sample: impl FnMut() -> BTreeMap<String, usize>,
) -> BTreeMap<String, usize> {
    let start = Instant::now();
    loop {
        let seen = sample();
        println!("{what}: {seen:?}");
        if seen.keys().cloned().collect::<Vec<_>>() == pods {
            return seen;
        }
        assert!(start.elapsed() < START, "{what} never spread over exactly {pods:?}; last seen {seen:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn node_port_cluster_ip_and_dns_spread_over_both_pods() {
    let cluster = Cluster::start_with(&["--backoff-base-ms", "300"]);
    let layout = busybox_layout(cluster.data_dir());
    assert_eq!(cluster.import(&layout, "busybox:v1"), "busybox:v1");
    cluster.apply(APP);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    cluster.ok(&["wait", "--for=condition=Ready", "pod/client", "--timeout=90s"]);
    let pods = json(&cluster, &["get", "pods", "-l", "app=web", "-o", "json"]);
    let mut names: Vec<String> = pods["items"]
        .as_array()
        .expect("pod list")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "two web pods: {names:?}");

    let service = json(&cluster, &["get", "service", "web", "-o", "json"]);
    let cluster_ip = service["spec"]["clusterIP"].as_str().expect("the Service has a ClusterIP").to_string();
    let node_port = service["spec"]["ports"][0]["nodePort"].as_u64().expect("the Service has a NodePort");
    let node_port = u16::try_from(node_port).expect("NodePort fits a port");
    println!("Service web: ClusterIP {cluster_ip}, NodePort {node_port}, pods {names:?}");

    let started = Instant::now();
    let local = spread_over(&names, &format!("127.0.0.1:{node_port}"), || {
        count((0..REQUESTS).map(|_| get_localhost(node_port)))
    });
    println!("NodePort on 127.0.0.1 spread after {:?}: {local:?}", started.elapsed());

    let from_pod = spread_over(&names, &format!("http://{cluster_ip}/ from pod client"), || {
        get_from_client(&cluster, &format!("http://{cluster_ip}/"))
    });
    println!("ClusterIP from a pod: {from_pod:?}");

    let lookup = cluster.kubectl(&["exec", "client", "--", "nslookup", "web.default.svc.cluster.local"]);
    let answer = String::from_utf8_lossy(&lookup.stdout).to_string();
    println!("nslookup web.default.svc.cluster.local:\n{answer}{}", String::from_utf8_lossy(&lookup.stderr));
    assert!(
        lookup.status.success() && answer.contains(&cluster_ip),
        "web.default.svc.cluster.local should resolve to {cluster_ip} in a pod:\n{answer}"
    );
    // The short name goes through the pod's search path, as a user's `wget http://web/` does.
    let by_name = spread_over(&names, "http://web/ from pod client", || get_from_client(&cluster, "http://web/"));
    println!("the short name from a pod: {by_name:?}");
}
