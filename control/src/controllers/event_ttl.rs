//! Event TTL: deletes Events last seen longer ago than `--event-ttl` (1h by default, as
//! kube-apiserver keeps them), so the history of a busy cluster does not grow without bound.

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DeleteParams, ListParams};

/// When the event last happened: the latest of its timestamps (core/v1 `lastTimestamp`,
/// events.k8s.io `eventTime` and `series.lastObservedTime`, and when it was created).
fn last_seen(event: &Event) -> Option<jiff::Timestamp> {
    [
        event.last_timestamp.as_ref().map(|t| t.0),
        event.event_time.as_ref().map(|t| t.0),
        event.series.as_ref().and_then(|s| s.last_observed_time.as_ref()).map(|t| t.0),
        event.metadata.creation_timestamp.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .max()
}

fn expired(event: &Event, now: jiff::Timestamp, ttl: Duration) -> bool {
    let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX);
    last_seen(event).is_some_and(|seen| now.duration_since(seen) > ttl)
}

/// Deletes the expired events, a page at a time; returns how many went.
async fn pass(client: &kube::Client, ttl: Duration) -> Result<usize, kube::Error> {
    let all: Api<Event> = Api::all(client.clone());
    let now = jiff::Timestamp::now();
    let mut deleted = 0;
    let mut params = ListParams::default().limit(500);
    loop {
        let page = all.list(&params).await?;
        for event in page.items.iter().filter(|e| expired(e, now, ttl)) {
            let (Some(namespace), Some(name)) = (&event.metadata.namespace, &event.metadata.name) else { continue };
            let api: Api<Event> = Api::namespaced(client.clone(), namespace);
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => deleted += 1,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(deleted),
        }
    }
}

/// Runs until the process ends, looking every quarter of the TTL (at most every minute).
pub async fn run(client: kube::Client, ttl: Duration) {
    let period = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(period).await;
        match pass(&client, ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "expired events deleted"),
            Err(e) => tracing::warn!(error = %e, "event TTL pass failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(value: serde_json::Value) -> Event {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn events_expire_a_ttl_after_they_were_last_seen() {
        let now: jiff::Timestamp = "2026-01-01T02:00:00Z".parse().unwrap();
        let hour = Duration::from_secs(3600);
        let old = event(serde_json::json!({"metadata": {"name": "e", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "involvedObject": {}, "lastTimestamp": "2026-01-01T00:30:00Z"}));
        assert!(expired(&old, now, hour));
        let repeated =
            event(serde_json::json!({"metadata": {"name": "e", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "involvedObject": {}, "lastTimestamp": "2026-01-01T00:30:00Z",
            "series": {"count": 4, "lastObservedTime": "2026-01-01T01:30:00.000000Z"}}));
        assert!(!expired(&repeated, now, hour), "a series seen within the hour stays");
        let fresh = event(serde_json::json!({"metadata": {"name": "e"}, "involvedObject": {},
            "eventTime": "2026-01-01T01:59:00.000000Z"}));
        assert!(!expired(&fresh, now, hour));
        let undated = event(serde_json::json!({"metadata": {"name": "e"}, "involvedObject": {}}));
        assert!(!expired(&undated, now, hour), "an event without any time is left alone");
    }
}
