//! Safe defaults a user relies on: secrets and credentials never reach the server's log, even at
//! debug level, and the API speaks only TLS and answers 401 to a caller without credentials.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use base64::Engine;
use common::NetworkSlot;

/// A `wharf server` whose log (stderr) goes to a file, at the log level asked for.
struct LoggedServer {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
    log: PathBuf,
    _network: NetworkSlot,
}

impl LoggedServer {
    fn start(rust_log: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let network = NetworkSlot::take();
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["server", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
            .args(["--cluster-cidr", &network.cluster_cidr()])
            .args(["--service-cidr", &network.service_cidr()])
            .args(["--service-node-port-range", &network.node_port_range()])
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("wharf starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("Wharf API server listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(60)).expect("wharf server printed its URL within 60 s");
        LoggedServer { child, dir, url, log, _network: network }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(common::kubectl_path())
            .arg("--kubeconfig")
            .arg(self.data_dir().join("kubeconfig.yaml"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.unwrap_or("").as_bytes()).expect("kubectl stdin");
        drop(input);
        child.wait_with_output().expect("kubectl finishes")
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None)
    }

    fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).expect("the server log")).into_owned()
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn secrets_and_tokens_never_reach_the_log() {
    let server = LoggedServer::start("debug,libcgroups=error");
    let value = "s3cr3t-wharf-value-9b1f47c2";
    let patched = "s3cr3t-wharf-patched-4e8d0a61";
    let string_data = "s3cr3t-wharf-stringdata-77c0d5";
    let admin_token = std::fs::read_to_string(server.data_dir().join("admin.token")).expect("admin.token");
    let admin_token = admin_token.trim();

    // A Secret created, read, listed, patched and replaced, through kubectl (the admin token).
    server.ok(&["create", "secret", "generic", "creds", &format!("--from-literal=password={value}")]);
    let got = server.ok(&["get", "secret", "creds", "-o", "yaml"]);
    let encoded = base64::engine::general_purpose::STANDARD.encode(value);
    assert!(got.contains(&encoded), "the Secret holds the value: {got}");
    server.ok(&["get", "secrets", "-o", "json"]);
    let patch = format!(r#"{{"stringData":{{"password":"{patched}"}}}}"#);
    server.ok(&["patch", "secret", "creds", "-p", &patch]);
    let patch = format!(
        r#"[{{"op":"add","path":"/data/other","value":"{}"}}]"#,
        base64::engine::general_purpose::STANDARD.encode(string_data)
    );
    server.ok(&["patch", "secret", "creds", "--type", "json", "-p", &patch]);
    let manifest =
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: applied}}\nstringData: {{token: {string_data}}}\n");
    server.ok_with(&["apply", "-f", "-"], Some(&manifest));
    // A Secret refused by validation still carries its data in the request.
    let bad = format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: Bad_Name}}\nstringData: {{k: {value}}}\n");
    assert!(!server.kubectl(&["apply", "-f", "-"], Some(&bad)).status.success());

    // A Wharf token, used; a wrong token; a ServiceAccount token, used.
    let created = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["token", "create", "--user", "alice", "--group", "devs", "--kubeconfig"])
        .arg(server.data_dir().join("kubeconfig.yaml"))
        .output()
        .expect("wharf token create runs");
    assert!(created.status.success(), "wharf token create: {}", String::from_utf8_lossy(&created.stderr));
    let wharf_token = String::from_utf8_lossy(&created.stdout).lines().last().unwrap_or_default().trim().to_string();
    assert!(wharf_token.starts_with("wharf-"), "a Wharf token: {wharf_token:?}");
    let whoami = server.ok(&["auth", "whoami", "--token", &wharf_token]);
    assert!(whoami.contains("alice"), "the Wharf token authenticates as alice: {whoami}");
    let wrong = format!("{wharf_token}0");
    assert!(!server.kubectl(&["get", "pods", "--token", &wrong], None).status.success());
    let sa_token = server.ok(&["create", "token", "default"]).trim().to_string();
    assert!(sa_token.split('.').count() == 3, "a JWT: {sa_token:?}");
    server.ok(&["auth", "whoami", "--token", &sa_token]);
    // And a watch, whose events carry the Secret.
    let _ = server.kubectl(&["get", "secrets", "--watch", "--request-timeout=2s"], None);

    std::thread::sleep(Duration::from_secs(1));
    let log = server.log_text();
    let lines = log.lines().count();
    println!("server log at debug: {lines} lines, {} bytes", log.len());
    // The requests themselves are in the log (method, path, status), so the log was looked at
    // where a leak would be.
    let secret_requests = log.lines().filter(|l| l.contains("/secrets/creds")).count();
    println!("log lines about the Secret's requests: {secret_requests}");
    assert!(secret_requests >= 4, "the server logged the Secret's requests at debug level");
    let wharf_secret = wharf_token.split_once('.').map(|(_, s)| s).unwrap_or(&wharf_token).to_string();
    let sa_signature = sa_token.rsplit('.').next().unwrap_or_default().to_string();
    let forbidden: Vec<(&str, String)> = vec![
        ("the Secret's value", value.to_string()),
        ("the Secret's value in base64", encoded),
        ("the patched value", patched.to_string()),
        ("the patched value in base64", base64::engine::general_purpose::STANDARD.encode(patched)),
        ("the stringData value", string_data.to_string()),
        ("the stringData value in base64", base64::engine::general_purpose::STANDARD.encode(string_data)),
        ("the admin token", admin_token.to_string()),
        ("the Wharf token's secret", wharf_secret),
        ("the wrong token", wrong),
        ("the ServiceAccount token's signature", sa_signature),
    ];
    let leaks: Vec<String> = forbidden
        .iter()
        .filter_map(|(what, secret)| {
            log.lines().find(|l| l.contains(secret.as_str())).map(|l| format!("{what} is in the log: {l:.300}"))
        })
        .collect();
    assert!(leaks.is_empty(), "secrets in the server's debug log:\n{}", leaks.join("\n"));
}

#[test]
fn the_api_speaks_only_tls_and_asks_for_credentials() {
    let server = LoggedServer::start("warn");
    let address = server.url.trim_start_matches("https://").to_string();

    // Plain HTTP/1.1 on the API port: no HTTP answer, no data.
    let mut tcp = TcpStream::connect(&address).expect("the API port accepts");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    tcp.write_all(format!("GET /api/v1/namespaces/kube-system/secrets HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .expect("send a plain request");
    let mut answer = Vec::new();
    let read = tcp.read_to_end(&mut answer);
    println!("plain HTTP answered {} bytes ({read:?}): {:02x?}", answer.len(), &answer[..answer.len().min(16)]);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "a plain HTTP request got an HTTP answer: {}",
        String::from_utf8_lossy(&answer)
    );
    // Nothing, or a TLS record (an alert, content type 21): never the API's data.
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "a plain HTTP request got data that is not a TLS alert: {:02x?}",
        &answer[..answer.len().min(64)]
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains("kind"),
        "a plain HTTP request got API data: {}",
        String::from_utf8_lossy(&answer)
    );

    // HTTPS without credentials: 401 with a Status.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (status, body) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(&server.data_dir()))
            .build()
            .expect("HTTP client");
        let response = client
            .get(format!("{}/api/v1/namespaces/kube-system/secrets", server.url))
            .send()
            .await
            .expect("the API answers over TLS");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("the answer's body"))
    });
    let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON answer");
    println!("HTTPS without credentials: {status} {body}");
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        (body["kind"].as_str(), body["status"].as_str(), body["reason"].as_str(), body["code"].as_u64()),
        (Some("Status"), Some("Failure"), Some("Unauthorized"), Some(401)),
        "{body}"
    );
}

fn tls_config(data_dir: &Path) -> rustls::ClientConfig {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let ca = std::fs::read(data_dir.join("pki/ca.crt")).expect("the cluster CA");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.expect("a PEM certificate")).expect("a CA certificate");
    }
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
