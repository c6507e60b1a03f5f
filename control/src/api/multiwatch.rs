//! `GET /dashboard/v1/watch`: many watches over one WebSocket (the dashboard opens one per tab).
//!
//! Each watch is served by a synthesized `GET <path>` carrying the socket's credentials, sent
//! through the API's own dispatch: authentication, authorization, selectors and watch semantics
//! are exactly those kubectl gets, and this module only multiplexes the streams.
//!
//! Client → server: `{"op":"watch","id":N,"path":"/api/v1/...?watch=1&resourceVersion=R"}` and
//! `{"op":"cancel","id":N}`. Server → client: `{"id":N,"event":{"type":..,"object":..}}` per
//! watch event, `{"id":N,"error":Status}` when the watch is refused, `{"id":N,"end":true}` when
//! the server ends it (its timeout). A cancelled watch says nothing more.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, BytesMut};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::ApiState;
use super::request::Query;
use crate::auth::client_cert::ClientCertificate;
use crate::auth::tokens;
use crate::error::Error;

/// Where the endpoint is routed.
pub const PATH: &str = "/dashboard/v1/watch";
/// The subprotocol the dashboard asks for (next to its bearer token subprotocol).
pub const PROTOCOL: &str = "wharf.watch.v1";
/// Messages queued for the socket before the watches wait for it.
const OUTBOX: usize = 1024;
/// Watches one socket may hold at once.
const MAX_WATCHES: usize = 256;
/// Largest error body read from a refused watch.
const MAX_ERROR_BODY: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Op {
    Watch { id: u64, path: String },
    Cancel { id: u64 },
}

/// Upgrades an authenticated request to the multiplexing socket.
pub async fn serve(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    extensions: Extensions,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if state.auth.authenticate_request(&headers, &extensions).is_none() {
        return Error::Unauthorized.into_response();
    }
    let credentials = Credentials {
        authorization: tokens::authorization(&headers),
        certificate: extensions.get::<ClientCertificate>().cloned(),
    };
    let Ok(upgrade) = upgrade else {
        return Error::BadRequest(format!("{PATH} is a WebSocket (subprotocol {PROTOCOL})")).into_response();
    };
    upgrade.protocols([PROTOCOL]).on_upgrade(move |socket| session(socket, state, credentials))
}

/// The socket's credentials, which each of its watches presents again: its bearer token and
/// its connection's client certificate.
#[derive(Clone, Default)]
struct Credentials {
    authorization: Option<HeaderValue>,
    certificate: Option<ClientCertificate>,
}

/// One socket: reads the client's operations, runs a task per watch, writes their messages.
async fn session(socket: WebSocket, state: Arc<ApiState>, credentials: Credentials) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut outbox) = mpsc::channel::<Message>(OUTBOX);
    // Whatever is queued goes out in one flush.
    let writer = tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            if sink.feed(message).await.is_err() {
                return;
            }
            while let Ok(message) = outbox.try_recv() {
                if sink.feed(message).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let mut watches: HashMap<u64, JoinHandle<()>> = HashMap::new();
    while let Some(Ok(message)) = stream.next().await {
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        match serde_json::from_str::<Op>(&text) {
            Ok(Op::Watch { id, path }) => {
                watches.retain(|_, task| !task.is_finished());
                if let Some(previous) = watches.remove(&id) {
                    previous.abort();
                }
                if watches.len() >= MAX_WATCHES {
                    let refused = Error::BadRequest(format!("at most {MAX_WATCHES} watches per socket"));
                    let _ = out.send(error_message(id, &refused.status())).await;
                    continue;
                }
                let task = tokio::spawn(run(state.clone(), credentials.clone(), id, path, out.clone()));
                watches.insert(id, task);
            }
            Ok(Op::Cancel { id }) => {
                if let Some(task) = watches.remove(&id) {
                    task.abort();
                }
            }
            Err(e) => {
                let id = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["id"].as_u64()).unwrap_or(0);
                let _ = out.send(error_message(id, &Error::BadRequest(format!("bad message: {e}")).status())).await;
            }
        }
    }
    for task in watches.values() {
        task.abort();
    }
    drop(out);
    writer.abort();
}

/// The request a watch is served as: a GET of `path` with the socket's credentials.
fn watch_request(path: &str, credentials: Credentials) -> Result<Request, Error> {
    let uri: Uri = path.parse().map_err(|_| Error::BadRequest(format!("invalid path {path:?}")))?;
    if uri.scheme().is_some() || !(uri.path().starts_with("/api/") || uri.path().starts_with("/apis/")) {
        return Err(Error::BadRequest(format!("{path:?} is not an API path")));
    }
    if !Query::parse(uri.query())?.flag("watch") {
        return Err(Error::BadRequest(format!("{path:?} is not a watch (add watch=1)")));
    }
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .map_err(|e| Error::BadRequest(format!("invalid path {path:?}: {e}")))?;
    if let Some(authorization) = credentials.authorization {
        request.headers_mut().insert(header::AUTHORIZATION, authorization);
    }
    if let Some(certificate) = credentials.certificate {
        request.extensions_mut().insert(certificate);
    }
    Ok(request)
}

/// Serves one watch through the API's dispatch and relays its events until it ends.
async fn run(state: Arc<ApiState>, credentials: Credentials, id: u64, path: String, out: mpsc::Sender<Message>) {
    let request = match watch_request(&path, credentials) {
        Ok(request) => request,
        Err(e) => {
            let _ = out.send(error_message(id, &e.status())).await;
            return;
        }
    };
    let response = super::dispatch(State(state), request).await;
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !response.status().is_success() || !json {
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_ERROR_BODY);
        let bytes = http_body_util::BodyExt::collect(body).await.map(|b| b.to_bytes()).unwrap_or_default();
        let parsed = serde_json::from_slice::<Value>(&bytes).ok().filter(|v| v["kind"] == "Status");
        let error = parsed.unwrap_or_else(|| {
            let message = format!("the watch answered {status} without a Status");
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                "reason": "InternalError", "code": status.as_u16()})
        });
        let _ = out.send(error_message(id, &error)).await;
        return;
    }
    let prefix = format!("{{\"id\":{id},\"event\":");
    let mut body = response.into_body().into_data_stream();
    let mut pending = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::debug!(error = %e, path, "multiplexed watch body failed");
                let _ = out.send(error_message(id, &Error::Internal(e.to_string()).status())).await;
                return;
            }
        };
        pending.extend_from_slice(&chunk);
        while let Some(newline) = pending.iter().position(|b| *b == b'\n') {
            let line = pending.split_to(newline + 1);
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let mut message = BytesMut::with_capacity(prefix.len() + line.len() + 1);
            message.put_slice(prefix.as_bytes());
            message.put_slice(line);
            message.put_u8(b'}');
            let Ok(text) = Utf8Bytes::try_from(message.freeze()) else { continue };
            if out.send(Message::Text(text)).await.is_err() {
                return;
            }
        }
    }
    let _ = out.send(text(format!("{{\"id\":{id},\"end\":true}}"))).await;
}

fn error_message(id: u64, status: &Value) -> Message {
    text(serde_json::json!({"id": id, "error": status}).to_string())
}

fn text(s: String) -> Message {
    Message::Text(Utf8Bytes::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_api_watches_are_served() {
        let auth = Credentials { authorization: Some(HeaderValue::from_static("Bearer x")), certificate: None };
        assert!(watch_request("/api/v1/pods?watch=1", auth.clone()).is_ok());
        assert!(
            watch_request("/apis/apps/v1/namespaces/a/deployments?watch=true&labelSelector=a%3Db", auth.clone())
                .is_ok()
        );
        assert!(watch_request("/api/v1/pods", auth.clone()).is_err());
        assert!(watch_request("/dashboard/v1/watch?watch=1", auth.clone()).is_err());
        assert!(watch_request("https://elsewhere/api/v1/pods?watch=1", auth).is_err());
    }
}
