//! `kubectl port-forward` on the agent: one WebSocket per forwarded connection
//! (`GET /portForward/{namespace}/{pod}?port=P&uid=UID&container=C`, subprotocol
//! `portforward.wharf.dev`), opened by the API server, which speaks SPDY with kubectl.
//!
//! The agent connects to the port before it accepts the WebSocket, so a refused port is an HTTP
//! error with kubelet's message. It connects from inside the pod's network namespace
//! (`DATA/pods/<uid>/sandbox/ns/net`, joined by a thread of its own that ends after the connect)
//! to `127.0.0.1:PORT`, which reaches whatever the pod listens on, with or without a pod IP; a
//! pod without a sandbox (Wasm on the host network) is reached at `127.0.0.1:PORT` on the host.
//!
//! Bytes travel in binary messages both ways. An empty binary message means "no more bytes
//! from this side" (the socket's write side is shut down); the agent closes the WebSocket once
//! both directions have ended, or as soon as the API server closes it.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use nix::sched::CloneFlags;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The subprotocol of the API server's port-forward WebSocket.
pub const PROTOCOL: &str = "portforward.wharf.dev";
/// How long connecting to the pod's port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest message sent.
const CHUNK: usize = 32 * 1024;

/// Connects to `port` of the pod whose network namespace is `netns` (the host's loopback when
/// there is none); the error is the reason, for kubectl.
pub async fn connect(netns: &Path, port: u16) -> Result<TcpStream, String> {
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    if !netns.exists() {
        return match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(format!("failed to connect to {target} on the node: {e}")),
            Err(_) => Err(format!("timed out connecting to {target} on the node")),
        };
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let path = netns.to_path_buf();
    // A thread of its own: it leaves the host's namespace for good, so it must not be a pooled one.
    let spawned = std::thread::Builder::new().name("port-forward".into()).spawn(move || {
        let connected = File::open(&path)
            .map_err(|e| format!("cannot open network namespace {}: {e}", path.display()))
            .and_then(|ns| {
                nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| format!("cannot enter network namespace {}: {e}", path.display()))
            })
            .and_then(|()| {
                std::net::TcpStream::connect_timeout(&target, CONNECT_TIMEOUT).map_err(|e| {
                    format!("failed to connect to {target} inside network namespace {}: {e}", path.display())
                })
            });
        let _ = tx.send(connected);
    });
    spawned.map_err(|e| format!("cannot start a thread: {e}"))?;
    let stream = rx.await.map_err(|_| "the connecting thread went away".to_string())??;
    stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    TcpStream::from_std(stream).map_err(|e| e.to_string())
}

/// Relays between the API server's WebSocket and the pod's connection until both directions
/// have ended or the WebSocket closes.
pub async fn relay(socket: WebSocket, stream: TcpStream) {
    let (mut pod_rx, mut pod_tx) = stream.into_split();
    let (mut ws_tx, mut ws_rx) = socket.split();
    {
        // Ends with true at the API server's end-of-input marker, false when it closed.
        let up = async {
            while let Some(Ok(message)) = ws_rx.next().await {
                let bytes = match message {
                    Message::Binary(bytes) => bytes,
                    Message::Close(_) => return false,
                    _ => continue,
                };
                if bytes.is_empty() {
                    let _ = pod_tx.shutdown().await;
                    return true;
                }
                if pod_tx.write_all(&bytes).await.is_err() {
                    return false;
                }
            }
            false
        };
        let down = async {
            let mut buffer = vec![0u8; CHUNK];
            loop {
                match pod_rx.read(&mut buffer).await {
                    Ok(0) => {
                        let _ = ws_tx.send(Message::Binary(Bytes::new())).await;
                        return;
                    }
                    Ok(n) => {
                        if ws_tx.send(Message::Binary(Bytes::copy_from_slice(&buffer[..n]))).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = ws_tx.send(Message::Text(format!("error reading from the pod: {e}").into())).await;
                        return;
                    }
                }
            }
        };
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                finished = &mut up, if !up_done => {
                    up_done = true;
                    if !finished || down_done {
                        break;
                    }
                }
                _ = &mut down, if !down_done => {
                    down_done = true;
                    if up_done {
                        break;
                    }
                }
            }
        }
    }
    let _ = ws_tx.send(Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_sandbox_the_hosts_loopback_is_used() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let missing = Path::new("/nonexistent/sandbox/ns/net");
        let mut stream = connect(missing, port).await.unwrap();
        let (mut accepted, _) = listener.accept().await.unwrap();
        stream.write_all(b"hi").await.unwrap();
        let mut got = [0u8; 2];
        accepted.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hi");
        drop(listener);
        let refused = connect(missing, port).await.unwrap_err();
        assert!(refused.contains("refused"), "{refused}");
    }
}
