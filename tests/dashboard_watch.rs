//! The dashboard's multiplexed watch socket, `/dashboard/v1/watch`, spoken as the browser speaks
//! it: a WebSocket over TLS with the token in the bearer subprotocol. Watches are created with
//! kubectl and their events must arrive tagged with the client's watch id.

mod common;

use std::time::Duration;

use base64::Engine;
use common::Cluster;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, ClientRequestBuilder, Message};

type Socket = WebSocketStream<TlsStream<TcpStream>>;

/// Opens the socket with `token` in the bearer subprotocol.
async fn connect(cluster: &Cluster, token: &str) -> Result<Socket, tungstenite::Error> {
    let (stream, address) = cluster.tls_connect().await;
    let bearer = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token);
    let uri: tungstenite::http::Uri = format!("wss://{address}/dashboard/v1/watch").parse().unwrap();
    let request = ClientRequestBuilder::new(uri)
        .with_sub_protocol("wharf.watch.v1")
        .with_sub_protocol(format!("base64url.bearer.authorization.k8s.io.{bearer}"));
    let (socket, response) = tokio_tungstenite::client_async(request, stream).await?;
    assert_eq!(response.headers()["sec-websocket-protocol"], "wharf.watch.v1");
    Ok(socket)
}

async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).await.expect("the socket takes a message");
}

/// The next message that is not a bookmark (with a generous bound so a broken server fails the
/// test instead of hanging it).
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("a message within a minute")
            .expect("the socket stays open")
            .expect("a readable message");
        let Message::Text(text) = message else { continue };
        let value: Value = serde_json::from_str(&text).expect("messages are JSON");
        if value["event"]["type"] != "BOOKMARK" {
            return value;
        }
    }
}

/// The resourceVersion of the list at `path` (kubectl's `get` would merge items into a List without one).
fn resource_version(cluster: &Cluster, path: &str) -> String {
    let list: serde_json::Value = serde_json::from_str(&cluster.ok(&["get", "--raw", path])).expect("a JSON list");
    list["metadata"]["resourceVersion"].as_str().expect("the list's resourceVersion").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_watches_share_a_socket_errors_are_statuses_and_cancel_stops_one() {
    let cluster = Cluster::start_with(&["--no-agent"]);
    cluster.ok(&["create", "namespace", "mux-a"]);
    cluster.ok(&["create", "namespace", "mux-b"]);
    // Every namespace gets its kube-root-ca.crt ConfigMap: watch from after it arrived.
    let root_ca = || cluster.kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", "mux-a"]).status.success();
    assert!(cluster.eventually(Duration::from_secs(20), root_ca), "kube-root-ca.crt appears in mux-a");
    let rv_a = resource_version(&cluster, "/api/v1/namespaces/mux-a/configmaps");
    let rv_b = resource_version(&cluster, "/api/v1/namespaces/mux-b/secrets");
    let mut socket = connect(&cluster, &cluster.admin_token()).await.expect("the socket opens with the admin token");

    let watch = |id: u64, path: String| json!({"op": "watch", "id": id, "path": path});
    send(&mut socket, watch(1, format!("/api/v1/namespaces/mux-a/configmaps?watch=1&resourceVersion={rv_a}"))).await;
    send(
        &mut socket,
        watch(2, format!("/api/v1/namespaces/mux-b/secrets?watch=1&resourceVersion={rv_b}&allowWatchBookmarks=true")),
    )
    .await;
    cluster.ok(&["create", "configmap", "one", "-n", "mux-a", "--from-literal=k=v"]);
    cluster.ok(&["create", "secret", "generic", "two", "-n", "mux-b", "--from-literal=k=v"]);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = next(&mut socket).await;
        println!("{message}");
        seen.push((message["id"].as_u64().unwrap(), message["event"]["object"]["metadata"]["name"].clone()));
    }
    seen.sort_by_key(|(id, _)| *id);
    assert_eq!(seen, vec![(1, json!("one")), (2, json!("two"))]);

    // A path the API refuses is answered with its Status, on that watch's id only.
    send(&mut socket, watch(3, "/api/v1/namespaces/mux-a/nosuchthings?watch=1".into())).await;
    let refused = next(&mut socket).await;
    assert_eq!(refused["id"], 3, "{refused}");
    assert_eq!(refused["error"]["kind"], "Status", "{refused}");
    assert_eq!(refused["error"]["code"], 404, "{refused}");
    // So is a request that is not a watch.
    send(&mut socket, watch(4, "/api/v1/namespaces/mux-a/configmaps".into())).await;
    let refused = next(&mut socket).await;
    assert_eq!((refused["id"].clone(), refused["error"]["code"].clone()), (json!(4), json!(400)), "{refused}");

    // Cancel watch 1; the server handles messages in order, so once watch 5's refusal arrives
    // the cancel has been handled.
    send(&mut socket, json!({"op": "cancel", "id": 1})).await;
    send(&mut socket, watch(5, "/api/v1/nosuchthings?watch=1".into())).await;
    assert_eq!(next(&mut socket).await["id"], 5);
    cluster.ok(&["create", "configmap", "three", "-n", "mux-a", "--from-literal=k=v"]);
    cluster.ok(&["create", "secret", "generic", "four", "-n", "mux-b", "--from-literal=k=v"]);
    let message = next(&mut socket).await;
    assert_eq!(message["id"], 2, "the cancelled watch sent {message}");
    assert_eq!(message["event"]["object"]["metadata"]["name"], "four");
    assert_eq!(message["event"]["type"], "ADDED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_needs_a_valid_token() {
    let cluster = Cluster::start_with(&["--no-agent"]);
    match connect(&cluster, "not-the-token").await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            let status: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(status["kind"], "Status");
        }
        Err(e) => panic!("expected a 401 refusal, got {e}"),
        Ok(_) => panic!("the socket opened with a wrong token"),
    }
}
