//! `GET .../functions/{name}/log[?follow=true&tailLines=N]`: a Function's logs as one
//! `text/plain` stream, every line prefixed with where it comes from.
//!
//! - A Wasm function runs in the nodes' gateways, each keeping what the function's requests on
//!   it wrote: the API server reads every Ready node's (with a gateway) from its agent
//!   (`/functionLogs/NS/NAME`, as the API server), lines prefixed `[NODE] `.
//! - A Linux-image function runs as the Deployment it owns: its pods' logs (as `pods/log`),
//!   lines prefixed `[POD] `.
//!
//! With `follow=true` the stream stays open and interleaves the sources line by line.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use super::ApiState;
use super::request::{Query, Target};
use crate::controllers::function::{FUNCTION_LABEL, GATEWAY_ANNOTATION};
use crate::error::{Error, Result};
use crate::registry::kinds::{self, Subresource};
use crate::store::ObjectKey;

/// How long an agent may take to start answering.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type Lines = BoxStream<'static, std::io::Result<Bytes>>;

/// Serves `GET .../functions/{name}/log`.
pub async fn serve(state: &ApiState, method: &Method, target: &Target, query: &Query) -> Result<Response> {
    if *method != Method::GET {
        return Err(Error::MethodNotAllowed);
    }
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let function =
        state.store.get(&ObjectKey::new(target.resource.storage_key(), &namespace, &name)).ok_or_else(|| {
            Error::NotFound {
                group: target.resource.group.into(),
                kind: target.resource.plural.into(),
                name: name.clone(),
            }
        })?;
    let follow = query.flag("follow");
    let tail = query.number("tailLines")?.filter(|n| *n >= 0);
    let uid = function.object["metadata"]["uid"].as_str().unwrap_or_default();
    let streams = if runs_as_deployment(state, &namespace, &name, uid) {
        pod_streams(state, &namespace, &name, follow, tail).await?
    } else {
        node_streams(state, &namespace, &name, follow, tail).await
    };
    let body = Body::from_stream(futures::stream::select_all(streams));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

/// Whether the function owns a Deployment of its name (a Linux image).
fn runs_as_deployment(state: &ApiState, namespace: &str, name: &str, uid: &str) -> bool {
    state.store.get(&ObjectKey::new("deployments.apps", namespace, name)).is_some_and(|d| {
        d.object["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["kind"] == "Function" && o["uid"] == uid)
    })
}

/// The query passed on: `follow` and `tailLines`.
fn forwarded(follow: bool, tail: Option<i64>) -> String {
    let mut pairs = vec![("follow", follow.to_string())];
    if let Some(tail) = tail {
        pairs.push(("tailLines", tail.to_string()));
    }
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// Every Ready node's (with a gateway) log of the Wasm function, from its agent.
async fn node_streams(state: &ApiState, namespace: &str, name: &str, follow: bool, tail: Option<i64>) -> Vec<Lines> {
    let nodes: Vec<String> = state
        .store
        .list("nodes", None, None, 0, |n| {
            super::proxy::node_ready(&n.object) && n.object["metadata"]["annotations"][GATEWAY_ANNOTATION].is_string()
        })
        .items
        .iter()
        .map(|n| n.key.name.clone())
        .collect();
    let query = forwarded(follow, tail);
    let open = nodes.iter().map(|node| {
        let query = query.clone();
        async move {
            let (address, port) = super::logs::agent_address(state, node).ok()?;
            let url =
                format!("https://{}/functionLogs/{namespace}/{name}?{query}", super::logs::authority(&address, port));
            let sent = state.agents.get(&url).send();
            match tokio::time::timeout(CONNECT_TIMEOUT, sent).await {
                Ok(Ok(response)) if response.status().is_success() => {
                    Some(prefixed(response.bytes_stream(), format!("[{node}] ")))
                }
                Ok(Ok(response)) => {
                    tracing::info!(%node, status = %response.status(), "the agent has no function log");
                    None
                }
                Ok(Err(e)) => {
                    tracing::info!(%node, error = %e, "cannot read a function log from the agent");
                    None
                }
                Err(_) => {
                    tracing::info!(%node, "the agent did not answer for a function log in time");
                    None
                }
            }
        }
    });
    futures::future::join_all(open).await.into_iter().flatten().collect()
}

/// The logs of the Linux-image function's pods (as `pods/log` serves them).
async fn pod_streams(
    state: &ApiState,
    namespace: &str,
    name: &str,
    follow: bool,
    tail: Option<i64>,
) -> Result<Vec<Lines>> {
    let pods: Vec<String> = state
        .store
        .list("pods", Some(namespace), None, 0, |p| p.object["metadata"]["labels"][FUNCTION_LABEL] == name)
        .items
        .iter()
        .map(|p| p.key.name.clone())
        .collect();
    let resource = kinds::lookup("", "v1", "pods").ok_or_else(|| Error::Internal("no pods resource".into()))?;
    let query = Query::parse(Some(&forwarded(follow, tail)))?;
    // Opened together: each pod's agent may be slow or down.
    let opened = pods.into_iter().map(|pod| {
        let target = Target {
            resource,
            namespace: Some(namespace.to_string()),
            name: Some(pod.clone()),
            subresource: Some(Subresource::Log),
        };
        let query = &query;
        async move {
            match super::logs::pod_log(state, &target, query).await {
                Ok(response) => Some(prefixed(response.into_body().into_data_stream(), format!("[{pod}] "))),
                Err(e) => {
                    tracing::info!(%pod, error = %e, "no log from a function's pod");
                    None
                }
            }
        }
    });
    let streams = futures::future::join_all(opened).await.into_iter().flatten().collect();
    Ok(streams)
}

/// `stream` cut into whole lines, each starting with `prefix`; a last line without its newline
/// gets one. A broken source ends its lines there.
fn prefixed<E: std::fmt::Display + 'static>(
    stream: impl Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
    prefix: String,
) -> Lines {
    let state = (stream.boxed(), Vec::<u8>::new(), prefix, false);
    futures::stream::unfold(state, |(mut source, mut pending, prefix, done)| async move {
        if done {
            return None;
        }
        loop {
            match source.next().await {
                Some(Ok(chunk)) => {
                    pending.extend_from_slice(&chunk);
                    if let Some(last) = pending.iter().rposition(|b| *b == b'\n') {
                        let rest = pending.split_off(last + 1);
                        let lines = with_prefix(&prefix, &pending);
                        return Some((Ok(lines), (source, rest, prefix, false)));
                    }
                }
                end => {
                    if let Some(Err(e)) = end {
                        tracing::info!(source = %prefix.trim(), error = %e, "a function log source broke off");
                    }
                    if pending.is_empty() {
                        return None;
                    }
                    pending.push(b'\n');
                    let lines = with_prefix(&prefix, &pending);
                    return Some((Ok(lines), (source, Vec::new(), prefix, true)));
                }
            }
        }
    })
    .boxed()
}

/// Whole lines `text` with `prefix` before each.
fn with_prefix(prefix: &str, text: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(text.len() + prefix.len() * 4);
    for line in text.split_inclusive(|b| *b == b'\n') {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(line);
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_prefixed_whole() {
        let chunks: Vec<std::result::Result<Bytes, std::io::Error>> =
            vec![Ok(Bytes::from("a\nb")), Ok(Bytes::from("c\n")), Ok(Bytes::from("d"))];
        let out: Vec<Bytes> =
            prefixed(futures::stream::iter(chunks), "[n1] ".into()).map(|r| r.unwrap()).collect().await;
        assert_eq!(out, [Bytes::from("[n1] a\n"), Bytes::from("[n1] bc\n"), Bytes::from("[n1] d\n")]);
    }

    #[test]
    fn follow_and_tail_are_passed_on() {
        assert_eq!(forwarded(true, Some(5)), "follow=true&tailLines=5");
        assert_eq!(forwarded(false, None), "follow=false");
    }
}
