//! `?watch=true`: a stream of newline-delimited watch events (ADDED, MODIFIED, DELETED,
//! BOOKMARK, ERROR) from a resourceVersion, filtered by namespace and selectors, in JSON or as
//! Tables. Objects that start or stop matching a selector appear as ADDED or DELETED, as in
//! Kubernetes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::ApiState;
use super::output;
use super::request::{Output, Query, Target};
use super::resources::Filter;
use crate::error::{Error, Result};
use crate::registry::kinds::ResourceInfo;
use crate::store::{EventType, Stored, WatchSource, WatchStart};

/// How long a watch lasts when the client does not say (kube-apiserver picks 30–60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// Most events gathered into one write.
const MAX_BURST: usize = 256;
/// How often a bookmark is sent to clients that allow them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

struct Encoder {
    resource: &'static ResourceInfo,
    output: Output,
    columns_sent: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, stored: &Stored) -> Bytes {
        let mut out = BytesMut::with_capacity(stored.json().len() + 32);
        out.put_slice(b"{\"type\":\"");
        out.put_slice(kind.as_bytes());
        out.put_slice(b"\",\"object\":");
        match self.output {
            Output::Json => out.put_slice(stored.json()),
            Output::Table(include) => {
                let meta = json!({"resourceVersion": stored.rev.to_string()});
                let table =
                    output::table(self.resource, std::iter::once(&stored.object), include, meta, !self.columns_sent);
                self.columns_sent = true;
                out.put_slice(&serde_json::to_vec(&table).expect("JSON serializes"));
            }
        }
        out.put_slice(b"}\n");
        out.freeze()
    }

    fn raw(kind: &str, object: &Value) -> Bytes {
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).expect("JSON serializes");
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&self, rev: i64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let kind = match self.output {
            Output::Table(_) => json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1"}),
            Output::Json => json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version()}),
        };
        let mut object = kind;
        object["metadata"] = meta;
        Self::raw("BOOKMARK", &object)
    }
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response {
    use futures::StreamExt;
    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<Bytes, std::io::Error>));
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-cache")], body)
        .into_response()
}

/// Which event (if any) a watcher with `filter` sees for a change.
fn visible(kind: EventType, now: bool, before: Option<bool>) -> Option<&'static str> {
    match (kind, before, now) {
        (EventType::Added, _, true) => Some("ADDED"),
        (EventType::Modified, Some(true) | None, true) => Some("MODIFIED"),
        (EventType::Modified, Some(false), true) => Some("ADDED"),
        (EventType::Modified, Some(true), false) => Some("DELETED"),
        (EventType::Deleted, _, true) => Some("DELETED"),
        _ => None,
    }
}

pub fn serve(state: &ApiState, target: &Target, query: &Query, output: Output) -> Result<Response> {
    let resource = target.resource;
    let filter = Filter::from_query(resource, query)?;
    let timeout = query.number("timeoutSeconds")?.filter(|t| *t > 0).map(|t| Duration::from_secs(t as u64));
    let bookmarks = query.flag("allowWatchBookmarks");
    let rv = query.get("resourceVersion");
    let send_initial = match query.get("sendInitialEvents") {
        Some(v) => v == "true",
        None => rv.is_none() || rv == Some("0"),
    };
    let storage_key = resource.storage_key();
    let namespace = target.namespace.clone();
    let selects = move |s: &Stored| -> bool {
        s.key.resource == storage_key && namespace.as_ref().is_none_or(|ns| *ns == s.key.namespace)
    };

    let mut encoder = Encoder { resource, output, columns_sent: false };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let (initial, source): (Vec<Arc<Stored>>, Result<WatchSource>) = if send_initial {
        let page = state.store.list(&resource.storage_key(), target.namespace.as_deref(), None, 0, |s| {
            filter.matches(resource, &s.object)
        });
        let source = state.store.watch(WatchStart::After(page.rev));
        (page.items, source)
    } else {
        let after = match rv {
            Some(v) => v.parse::<i64>().map_err(|_| Error::BadRequest(format!("invalid resourceVersion {v:?}")))?,
            None => state.store.revision(),
        };
        (Vec::new(), state.store.watch(WatchStart::After(after)))
    };
    let mut source = match source {
        Ok(source) => source,
        Err(e) => {
            // Kubernetes answers an expired watch with 200 and one ERROR event.
            let _ = tx.try_send(Encoder::raw("ERROR", &e.status()));
            return Ok(stream_response(rx));
        }
    };
    let initial_end = send_initial && query.get("sendInitialEvents") == Some("true");

    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout.unwrap_or(DEFAULT_TIMEOUT));
        tokio::pin!(deadline);
        for burst in initial.chunks(MAX_BURST) {
            let mut chunk = BytesMut::new();
            for stored in burst {
                chunk.put_slice(&encoder.event("ADDED", stored));
            }
            if tx.send(chunk.freeze()).await.is_err() {
                return;
            }
        }
        if initial_end && bookmarks && tx.send(encoder.bookmark(source.revision(), true)).await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = tick.tick(), if bookmarks => {
                    if tx.send(encoder.bookmark(source.revision(), false)).await.is_err() {
                        return;
                    }
                }
                next = source.next() => {
                    // Send everything already available as one chunk: one write per burst.
                    let mut chunk = BytesMut::new();
                    let mut next = next;
                    let mut taken = 0;
                    loop {
                        let event = match next {
                            None => return,
                            Some(Err(e)) => {
                                chunk.put_slice(&Encoder::raw("ERROR", &e.status()));
                                let _ = tx.send(chunk.freeze()).await;
                                return;
                            }
                            Some(Ok(event)) => event,
                        };
                        if selects(&event.object) {
                            let now = filter.matches(resource, &event.object.object);
                            let before = event.previous.as_ref().map(|p| filter.matches(resource, &p.object));
                            if let Some(kind) = visible(event.kind, now, before) {
                                chunk.put_slice(&encoder.event(kind, &event.object));
                            }
                        }
                        taken += 1;
                        if taken == MAX_BURST {
                            break;
                        }
                        next = match source.try_next() {
                            Some(more) => Some(more),
                            None => break,
                        };
                    }
                    if !chunk.is_empty() && tx.send(chunk.freeze()).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(stream_response(rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_entering_and_leaving_a_selector() {
        assert_eq!(visible(EventType::Modified, true, Some(false)), Some("ADDED"));
        assert_eq!(visible(EventType::Modified, false, Some(true)), Some("DELETED"));
        assert_eq!(visible(EventType::Modified, false, Some(false)), None);
        assert_eq!(visible(EventType::Modified, true, Some(true)), Some("MODIFIED"));
        assert_eq!(visible(EventType::Deleted, false, None), None);
    }
}
