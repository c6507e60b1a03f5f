//! `pods/{name}/exec`: kubectl's remote-command WebSocket session (`v5.channel.k8s.io`, or
//! `v4.channel.k8s.io`), relayed to the agent of the pod's node. The API server opens the session
//! with the agent first (`wss://NODE:PORT/exec/NS/POD/CONTAINER?command=..`, the API server's client certificate, the
//! subprotocols kubectl offered), then upgrades kubectl's request with the subprotocol the agent
//! chose and copies messages both ways; the channels themselves are the agent's business. When
//! the agent refuses (the container is not running) or cannot be reached, kubectl still gets its
//! upgrade and the reason as a `Status` on the error channel, as kube-apiserver does.

use std::time::Duration;

use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::http::HeaderValue;
use axum::response::Response;
use futures::future::ready;
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, ClientRequestBuilder};

use super::ApiState;
use super::logs::{agent_address, authority, pod_container};
use super::request::{Query, Target};
use crate::error::{Error, Result};

/// The subprotocols the agents speak.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// Query parameters passed on to the agent (the container goes into its path).
const FORWARDED: [&str; 5] = ["command", "stdin", "stdout", "stderr", "tty"];
/// The remote-command channel of the final `Status`.
const ERROR_CHANNEL: u8 = 3;
/// How long reaching an agent may take (a node that went away drops packets).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one side may take to finish closing once the other side has.
const CLOSE_WAIT: Duration = Duration::from_secs(60);

pub(super) type AgentSocket = WebSocketStream<TlsStream<TcpStream>>;

fn bad(message: impl Into<String>) -> Error {
    Error::BadRequest(message.into())
}

/// Serves `.../pods/{name}/exec`; `upgrade` is kubectl's WebSocket request, if it made one.
/// As kube-apiserver, it answers problems with the pod as HTTP errors (kubectl then retries
/// with SPDY, which gets the same answer) and, once upgraded, problems on the node as a `Status`
/// on the error channel.
pub async fn pod_exec(
    state: &ApiState,
    target: &Target,
    raw_query: Option<&str>,
    upgrade: Option<WebSocketUpgrade>,
) -> Result<Response> {
    let query = Query::parse(raw_query)?;
    let name = target.name.clone().unwrap_or_default();
    let namespace = target.namespace.clone().unwrap_or_default();
    let (pod, container) = pod_container(state, target, &query)?;
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default().to_string();
    if node_name.is_empty() {
        return Err(bad(format!("pod {name} does not have a host assigned")));
    }
    let upgrade = upgrade.ok_or_else(|| {
        bad(format!("Upgrade request required: exec is served over WebSocket ({}), not SPDY", PROTOCOLS.join(", ")))
    })?;
    let offered: Vec<String> = upgrade
        .requested_protocols()
        .filter_map(|p| p.to_str().ok())
        .filter(|p| PROTOCOLS.contains(p))
        .map(String::from)
        .collect();
    let Some(first) = offered.first().and_then(|p| HeaderValue::from_str(p).ok()) else {
        return Err(bad(format!("none of the requested subprotocols is supported; use {}", PROTOCOLS.join(" or "))));
    };
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw_query.unwrap_or("")).map_err(|e| bad(format!("malformed query: {e}")))?;
    let forwarded: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| FORWARDED.contains(&k.as_str())).collect();
    let forwarded = serde_urlencoded::to_string(&forwarded).map_err(|e| Error::Internal(format!("exec query: {e}")))?;
    let path = format!("/exec/{namespace}/{name}/{container}?{forwarded}");
    let mut upgrade = upgrade;
    match connect(state, &node_name, &path, &offered).await {
        Ok((agent, chosen)) => {
            upgrade.set_selected_protocol(chosen);
            Ok(upgrade.on_upgrade(move |client| relay(client, agent)))
        }
        Err(error) => {
            upgrade.set_selected_protocol(first);
            Ok(upgrade.on_upgrade(move |client| refuse(client, error)))
        }
    }
}

/// Opens a WebSocket session (exec, port-forward) with the agent of `node_name`; returns it and
/// the subprotocol chosen.
pub(super) async fn connect(
    state: &ApiState,
    node_name: &str,
    path: &str,
    protocols: &[String],
) -> Result<(AgentSocket, HeaderValue)> {
    let unreachable =
        |e: &dyn std::fmt::Display| Error::Unavailable(format!("cannot reach the agent of node {node_name}: {e}"));
    let (address, port) = agent_address(state, node_name)?;
    let uri = format!("wss://{}{path}", authority(&address, port))
        .parse::<tungstenite::http::Uri>()
        .map_err(|e| bad(format!("cannot address the agent: {e}")))?;
    let mut request = ClientRequestBuilder::new(uri);
    for protocol in protocols {
        request = request.with_sub_protocol(protocol);
    }
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((address.as_str(), port)))
        .await
        .map_err(|e| unreachable(&e))?
        .map_err(|e| unreachable(&e))?;
    let server_name = rustls::pki_types::ServerName::try_from(address.clone()).map_err(|e| unreachable(&e))?;
    let tls = tokio_rustls::TlsConnector::from(state.agent_tls.clone())
        .connect(server_name, tcp)
        .await
        .map_err(|e| unreachable(&e))?;
    let (agent, response) = match tokio_tungstenite::client_async(request, tls).await {
        Ok(connected) => connected,
        Err(tungstenite::Error::Http(response)) => {
            let status: Value =
                response.body().as_deref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
            let message = status["message"].as_str().unwrap_or_default().to_string();
            return Err(match response.status().as_u16() {
                400 | 404 if !message.is_empty() => bad(message),
                code => Error::Unavailable(format!("the agent of node {node_name} answered {code} {message}")),
            });
        }
        Err(e) => return Err(unreachable(&e)),
    };
    let chosen = response
        .headers()
        .get(tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|p| HeaderValue::from_bytes(p.as_bytes()).ok())
        .ok_or_else(|| Error::Unavailable(format!("the agent of node {node_name} chose no subprotocol")))?;
    Ok((agent, chosen))
}

/// Tells kubectl why the session cannot start: the `Status` on the error channel, then a normal
/// closure, as kube-apiserver does when the node refuses.
async fn refuse(mut client: WebSocket, error: Error) {
    let mut message = vec![ERROR_CHANNEL];
    message.extend_from_slice(error.status().to_string().as_bytes());
    let _ = client.send(ws::Message::Binary(message.into())).await;
    let _ = client.send(ws::Message::Close(Some(ws::CloseFrame { code: 1000, reason: "".into() }))).await;
    let _ = tokio::time::timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = client.next().await {} }).await;
}

/// Copies messages both ways until both sides have closed. Each side answers its own pings.
async fn relay(client: WebSocket, agent: AgentSocket) {
    let (client_tx, client_rx) = client.split();
    let (agent_tx, agent_rx) = agent.split();
    let up = copy(
        client_rx.filter_map(|m| ready(m.ok().filter(|m| !matches!(m, ws::Message::Ping(_) | ws::Message::Pong(_))))),
        agent_tx.with(|m| ready(Ok::<_, tungstenite::Error>(to_agent(m)))),
    );
    let down = copy(agent_rx.filter_map(|m| ready(m.ok().and_then(from_agent))), client_tx);
    tokio::pin!(up, down);
    tokio::select! {
        // kubectl went away: the agent closes once the command has ended.
        _ = &mut up => down.await,
        // The agent closed: kubectl answers once it has read everything.
        _ = &mut down => {
            let _ = tokio::time::timeout(CLOSE_WAIT, up).await;
        }
    }
}

/// Copies one direction until its source ends. A source that ends without a close frame (a
/// broken connection) is reported to the other side as an abnormal closure.
async fn copy(mut from: impl Stream<Item = ws::Message> + Unpin, mut to: impl Sink<ws::Message> + Unpin) {
    let mut closed = false;
    while let Some(message) = from.next().await {
        closed |= matches!(message, ws::Message::Close(_));
        // The destination may be gone; reading on lets this side's closing handshake complete.
        let _ = to.send(message).await;
    }
    if !closed {
        let reason = "the other end of the exec session went away";
        let _ = to.send(ws::Message::Close(Some(ws::CloseFrame { code: 1011, reason: reason.into() }))).await;
    }
}

fn to_agent(message: ws::Message) -> tungstenite::Message {
    match message {
        ws::Message::Binary(data) => tungstenite::Message::Binary(data),
        ws::Message::Text(text) => tungstenite::Message::text(text.as_str()),
        ws::Message::Ping(data) => tungstenite::Message::Ping(data),
        ws::Message::Pong(data) => tungstenite::Message::Pong(data),
        ws::Message::Close(frame) => tungstenite::Message::Close(
            frame.map(|f| tungstenite::protocol::CloseFrame { code: f.code.into(), reason: f.reason.as_str().into() }),
        ),
    }
}

/// The agent's data and close messages; its pings are answered by tungstenite.
fn from_agent(message: tungstenite::Message) -> Option<ws::Message> {
    match message {
        tungstenite::Message::Binary(data) => Some(ws::Message::Binary(data)),
        tungstenite::Message::Text(text) => Some(ws::Message::text(text.as_str())),
        tungstenite::Message::Close(frame) => Some(ws::Message::Close(
            frame.map(|f| ws::CloseFrame { code: f.code.into(), reason: f.reason.as_str().into() }),
        )),
        _ => None,
    }
}
