//! Safe defaults a user relies on: secrets and credentials never reach the server's log, even at
//! debug level, and the API speaks only TLS and answers 401 to a caller without credentials.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;
use common::Cluster;

#[test]
fn secrets_and_tokens_never_reach_the_log() {
    let server = Cluster::start_logged(&[], "debug,libcgroups=error");
    let value = "s3cr3t-wharf-value-9b1f47c2";
    let patched = "s3cr3t-wharf-patched-4e8d0a61";
    let string_data = "s3cr3t-wharf-stringdata-77c0d5";
    let admin_token = server.admin_token();

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
    server.apply(&manifest);
    // A Secret refused by validation still carries its data in the request.
    let bad = format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: Bad_Name}}\nstringData: {{k: {value}}}\n");
    assert!(!server.kubectl_with(&["apply", "-f", "-"], Some(&bad), &[]).status.success());

    // A Wharf token, used; a wrong token; a ServiceAccount token, used.
    let created = server.ok_with_bin(&["token", "create", "--user", "alice", "--group", "devs"]);
    let wharf_token = created.lines().last().unwrap_or_default().trim().to_string();
    assert!(wharf_token.starts_with("wharf-"), "a Wharf token: {wharf_token:?}");
    let whoami = server.ok(&["auth", "whoami", "--token", &wharf_token]);
    assert!(whoami.contains("alice"), "the Wharf token authenticates as alice: {whoami}");
    let wrong = format!("{wharf_token}0");
    assert!(!server.kubectl(&["get", "pods", "--token", &wrong]).status.success());
    let sa_token = server.ok(&["create", "token", "default"]).trim().to_string();
    assert!(sa_token.split('.').count() == 3, "a JWT: {sa_token:?}");
    server.ok(&["auth", "whoami", "--token", &sa_token]);
    // And a watch, whose events carry the Secret.
    let _ = server.kubectl(&["get", "secrets", "--watch", "--request-timeout=2s"]);

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
    let server = Cluster::start_logged(&[], "warn");
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
        let client =
            reqwest::Client::builder().use_preconfigured_tls(server.tls_client_config()).build().expect("HTTP client");
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
