//! `pods/{name}/portforward`: `kubectl port-forward` (to a pod, or to a Service or workload,
//! which kubectl resolves to one of its pods itself).
//!
//! kubectl speaks SPDY/3.1: either tunnelled in binary WebSocket messages (subprotocol
//! `SPDY/3.1+portforward.k8s.io`, what kubectl 1.31+ tries first) or, when that is refused or
//! `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`, on the connection itself after an
//! `Upgrade: SPDY/3.1` request. Both are served, by the same SPDY session (`spdy`). Each
//! connection kubectl accepts locally becomes an error stream and a data stream; the API server
//! opens one WebSocket per connection to the agent of the pod's node
//! (`wss://NODE/portForward/NS/POD?port=P&uid=UID&container=C`, as the API server), which connects to
//! the port inside the pod and relays bytes in binary messages. An empty binary message means
//! "no more bytes from this side"; a text message from the agent is an error for kubectl's error
//! stream (as kubelet's "error forwarding port ..."); the agent closes once both sides are done.

mod spdy;

use std::sync::Arc;

use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::Message;

use super::ApiState;
use super::exec::connect;
use super::request::Target;
use crate::error::{Error, Result};
use spdy::Forward;

/// The WebSocket subprotocol of SPDY tunnelled in WebSocket (KEP-4006).
const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The stream protocol kubectl asks for in `X-Stream-Protocol-Version`.
const STREAM_PROTOCOL: &str = "portforward.k8s.io";
/// The subprotocol of the API server's WebSocket to the agent.
const AGENT_PROTOCOL: &str = "portforward.wharf.dev";

/// The pod being forwarded to, as the agent is asked for it.
struct PodRef {
    namespace: String,
    name: String,
    uid: String,
    node: String,
    container: String,
}

/// Serves `.../pods/{name}/portforward`. `websocket` is kubectl's WebSocket request if it made
/// one, `spdy` the connection's upgrade when it asked for `Upgrade: SPDY/3.1`.
pub async fn pod_port_forward(
    state: &Arc<ApiState>,
    target: &Target,
    headers: &HeaderMap,
    websocket: Option<WebSocketUpgrade>,
    spdy: Option<OnUpgrade>,
) -> Result<Response> {
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let pod = state
        .store
        .get(&crate::store::ObjectKey::new("pods", &namespace, &name))
        .ok_or_else(|| Error::NotFound { group: String::new(), kind: "pods".into(), name: name.clone() })?
        .object
        .clone();
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default().to_string();
    if node.is_empty() {
        return Err(Error::BadRequest(format!("pod {name} does not have a host assigned")));
    }
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    if phase != "Running" {
        return Err(Error::BadRequest(format!("pod {name} is not running (phase {phase})")));
    }
    let container = pod["spec"]["containers"][0]["name"].as_str().unwrap_or_default().to_string();
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let pod = Arc::new(PodRef { namespace, name, uid, node, container });
    let forward = {
        let state = state.clone();
        move |forward: Forward| forward_to_agent(state.clone(), pod.clone(), forward)
    };
    if let Some(upgrade) = websocket {
        let upgrade = upgrade.protocols([TUNNEL_PROTOCOL]);
        if upgrade.selected_protocol().is_none() {
            // kubectl falls back to SPDY on this answer.
            return Err(Error::BadRequest(format!(
                "port forwarding over WebSocket needs subprotocol {TUNNEL_PROTOCOL}"
            )));
        }
        return Ok(upgrade.on_upgrade(move |socket| tunnel(socket, forward)));
    }
    let upgrade = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let offered = headers
        .get_all("X-Stream-Protocol-Version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == STREAM_PROTOCOL);
    match spdy {
        Some(on_upgrade) if upgrade.eq_ignore_ascii_case("SPDY/3.1") && offered => {
            tokio::spawn(async move {
                match on_upgrade.await {
                    Ok(upgraded) => {
                        let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
                        spdy::serve(reader, writer, forward).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "port-forward upgrade failed"),
                }
            });
            Ok((
                StatusCode::SWITCHING_PROTOCOLS,
                [
                    (header::CONNECTION, HeaderValue::from_static("Upgrade")),
                    (header::UPGRADE, HeaderValue::from_static("SPDY/3.1")),
                    (
                        header::HeaderName::from_static("x-stream-protocol-version"),
                        HeaderValue::from_static(STREAM_PROTOCOL),
                    ),
                ],
            )
                .into_response())
        }
        _ => Err(Error::BadRequest(format!(
            "Upgrade request required: port forwarding is served over WebSocket ({TUNNEL_PROTOCOL}) or SPDY/3.1 ({STREAM_PROTOCOL})"
        ))),
    }
}

/// SPDY in WebSocket binary messages: a pipe turns the messages into the byte stream the SPDY
/// session reads and writes.
async fn tunnel<F, Fut>(socket: WebSocket, forward: F)
where
    F: Fn(Forward) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (session_side, tunnel_side) = tokio::io::duplex(64 * 1024);
    let (mut from_session, mut to_session) = tokio::io::split(tunnel_side);
    let (mut ws_tx, mut ws_rx) = socket.split();
    let inbound = async move {
        use tokio::io::AsyncWriteExt;
        while let Some(Ok(message)) = ws_rx.next().await {
            let bytes = match message {
                ws::Message::Binary(bytes) => bytes,
                ws::Message::Close(_) => break,
                _ => continue,
            };
            if to_session.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to_session.shutdown().await;
    };
    let outbound = async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match from_session.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if ws_tx.send(ws::Message::Binary(Bytes::copy_from_slice(&buffer[..n]))).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = ws_tx.send(ws::Message::Close(Some(ws::CloseFrame { code: 1000, reason: "".into() }))).await;
    };
    let (reader, writer) = tokio::io::split(session_side);
    let outbound = tokio::spawn(outbound);
    // kubectl closing the WebSocket ends the session's input, so the session ends (and stops
    // every forwarded connection) on its own.
    let inbound = tokio::spawn(inbound);
    spdy::serve(reader, writer, forward).await;
    inbound.abort();
    let _ = outbound.await;
}

/// Relays one forwarded connection to the agent of the pod's node.
async fn forward_to_agent(state: Arc<ApiState>, pod: Arc<PodRef>, forward: Forward) {
    let Forward { port, mut incoming, reset, mut reply } = forward;
    let path = format!(
        "/portForward/{}/{}?{}",
        pod.namespace,
        pod.name,
        serde_urlencoded::to_string([
            ("port", port.to_string()),
            ("uid", pod.uid.clone()),
            ("container", pod.container.clone())
        ])
        .unwrap_or_default()
    );
    let agent = match connect(&state, &pod.node, &path, &[AGENT_PROTOCOL.to_string()]).await {
        Ok((agent, _)) => agent,
        Err(e) => {
            let message = match e {
                Error::BadRequest(message) | Error::Unavailable(message) => message,
                other => other.to_string(),
            };
            reply.close(Some(message)).await;
            return;
        }
    };
    let (mut agent_tx, mut agent_rx) = agent.split();
    let error = {
        let up = async {
            while let Some(bytes) = incoming.recv().await {
                if agent_tx.send(Message::Binary(bytes)).await.is_err() {
                    return;
                }
            }
            // kubectl sends no more: the agent shuts the pod connection's write side.
            let _ = agent_tx.send(Message::Binary(Bytes::new())).await;
        };
        let down = async {
            while let Some(message) = agent_rx.next().await {
                let bytes = match message {
                    Ok(Message::Binary(bytes)) => bytes,
                    Ok(Message::Text(text)) => return Some(text.to_string()),
                    Ok(Message::Close(_)) | Err(_) => return None,
                    Ok(_) => continue,
                };
                if bytes.is_empty() {
                    reply.finish().await;
                } else if !reply.send(bytes).await {
                    return None;
                }
            }
            None
        };
        tokio::pin!(up, down);
        let mut up_done = false;
        loop {
            tokio::select! {
                _ = reset.cancelled() => break None,
                error = &mut down => break error,
                _ = &mut up, if !up_done => up_done = true,
            }
        }
    };
    let _ = agent_tx.close().await;
    reply.close(error).await;
}
