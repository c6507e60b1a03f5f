//! `kubectl port-forward` end to end, as root: the real kubectl forwards local ports to a busybox
//! httpd pod through `wharf server` (SPDY, tunnelled in WebSocket or on the upgraded connection)
//! and the node agent, which connects inside the pod's network namespace. To a pod, to a
//! Service (kubectl picks the pod), several requests, two connections at once, and a closed
//! port, which kubectl reports instead of hanging.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, busybox_layout, kubectl_path};

/// How long one HTTP exchange through the forward may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(30);

/// A cluster with a ready busybox httpd pod `web` (label app=web) serving its name on port 80.
fn cluster_with_web() -> Cluster {
    let cluster = Cluster::start();
    assert_eq!(cluster.import(&busybox_layout(cluster.data_dir()), "busybox:v1"), "busybox:v1");
    cluster.apply(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:v1
    command: [sh, -c, 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www']
    ports:
    - {name: http, containerPort: 80}
    readinessProbe:
      exec: {command: [wget, -q, -O, /dev/null, 'http://127.0.0.1:80/']}
      periodSeconds: 1
"#,
    );
    cluster.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);
    cluster
}

/// A running `kubectl port-forward`, killed by its PID when dropped.
struct PortForward {
    child: Child,
    /// The local port of the "Forwarding from 127.0.0.1:PORT -> REMOTE" line.
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl PortForward {
    fn start(cluster: &Cluster, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(kubectl_path())
            .arg("port-forward")
            .args(args)
            .env("KUBECONFIG", cluster.kubeconfig())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        let stderr = Arc::new(Mutex::new(String::new()));
        let collected = stderr.clone();
        let mut err = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = err.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                collected.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let port = loop {
            let line = rx.recv_timeout(HANG).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("kubectl port-forward {args:?} printed no Forwarding line; stderr:\n{}", stderr.lock().unwrap())
            });
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                break rest
                    .split(' ')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .expect("a port in the Forwarding line");
            }
        };
        // Later lines ("Handling connection for ...") are drained by the reader thread.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        PortForward { child, port, stderr }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the forwarded port");
        stream.set_read_timeout(Some(HANG)).unwrap();
        stream
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send_get(stream: &mut TcpStream) {
    stream.write_all(b"GET /index.html HTTP/1.0\r\nHost: forwarded\r\n\r\n").expect("send the request");
}

fn read_response(stream: &mut TcpStream) -> String {
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read the whole response (httpd closes after it)");
    response
}

fn get(forward: &PortForward) -> String {
    let mut stream = forward.connect();
    send_get(&mut stream);
    read_response(&mut stream)
}

fn assert_served(response: &str, forward: &PortForward) {
    assert!(response.starts_with("HTTP/1.") && response.contains(" 200 "), "{response}\nkubectl: {}", forward.stderr());
    assert!(response.ends_with("hello from web\n"), "{response}");
}

#[test]
fn port_forward_to_a_pod_serves_sequential_and_concurrent_connections() {
    let cluster = cluster_with_web();
    // -v=4 logs which transport kubectl negotiated.
    let forward = PortForward::start(&cluster, &["-v=4", "pod/web", ":80"], &[]);
    let started = Instant::now();
    for _ in 0..5 {
        assert_served(&get(&forward), &forward);
    }
    println!("5 sequential GETs through port-forward took {:?}", started.elapsed());

    // Two connections open at once, each answered on its own.
    let (mut first, mut second) = (forward.connect(), forward.connect());
    send_get(&mut second);
    send_get(&mut first);
    assert_served(&read_response(&mut second), &forward);
    assert_served(&read_response(&mut first), &forward);

    // Eight clients at the same time.
    let responses: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8).map(|_| scope.spawn(|| get(&forward))).collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    for response in &responses {
        assert_served(response, &forward);
    }

    // A body larger than one frame comes through whole.
    cluster.ok(&["exec", "web", "--", "sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x > /www/big.txt"]);
    let mut stream = forward.connect();
    stream.write_all(b"GET /big.txt HTTP/1.0\r\n\r\n").unwrap();
    let response = read_response(&mut stream);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_eq!(body.len(), 300000, "headers: {}", response.split("\r\n\r\n").next().unwrap_or_default());
    assert!(body.bytes().all(|b| b == b'x'));
    let log = forward.stderr();
    assert!(log.contains("negotiated protocol: portforward.k8s.io"), "kubectl did not tunnel over WebSocket:\n{log}");
    assert!(!log.lines().any(|l| l.starts_with('E')), "kubectl logged errors:\n{log}");
}

#[test]
fn port_forward_falls_back_to_spdy_and_reaches_services() {
    let cluster = cluster_with_web();
    // Without WebSocket, kubectl upgrades the connection to SPDY/3.1 itself.
    let spdy =
        PortForward::start(&cluster, &["-v=4", "pod/web", ":80"], &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")]);
    for _ in 0..3 {
        assert_served(&get(&spdy), &spdy);
    }
    let log = spdy.stderr();
    assert!(!log.contains("WebSocket") && !log.lines().any(|l| l.starts_with('E')), "{log}");
    drop(spdy);

    // A Service: kubectl maps its port to the target port of a pod its selector matches.
    cluster.apply(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n  - {port: 8080, targetPort: http}\n",
    );
    let local = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mapping = format!("{local}:8080");
    let forward = PortForward::start(&cluster, &["svc/web", &mapping], &[]);
    assert_eq!(forward.port, local);
    for _ in 0..3 {
        assert_served(&get(&forward), &forward);
    }
}

#[test]
fn a_closed_port_is_reported_by_kubectl_not_left_hanging() {
    let cluster = cluster_with_web();
    let mut forward = PortForward::start(&cluster, &["pod/web", ":81"], &[]);
    let mut stream = forward.connect();
    send_get(&mut stream);
    let mut answer = Vec::new();
    // The forwarded connection ends (the test's read timeout would fail it otherwise).
    let read = stream.read_to_end(&mut answer);
    assert!(read.is_ok() || answer.is_empty(), "{read:?}");
    assert!(answer.is_empty(), "nothing listens on 81, yet: {}", String::from_utf8_lossy(&answer));
    let deadline = Instant::now() + HANG;
    let message = loop {
        let stderr = forward.stderr();
        if stderr.contains("refused") || Instant::now() > deadline {
            break stderr;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(message.contains("error forwarding port 81 to pod web"), "kubectl said: {message}");
    assert!(message.contains("connection refused") || message.contains("Connection refused"), "{message}");
    // kubectl gives up on the session after an error, as it does with kubelet.
    let exited = (0..300).find_map(|_| {
        std::thread::sleep(Duration::from_millis(100));
        forward.child.try_wait().ok().flatten()
    });
    println!("kubectl after the refused connection: exit {exited:?}, stderr:\n{message}");
    assert!(exited.is_some_and(|status| !status.success()), "kubectl kept running: {exited:?}");
    assert!(forward.stderr().contains("lost connection to pod"), "{}", forward.stderr());
}
