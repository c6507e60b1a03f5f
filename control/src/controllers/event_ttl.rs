//! Event TTL: deletes Events last seen longer ago than `--event-ttl` (1h by default, as
//! kube-apiserver keeps them), so the history of a busy cluster does not grow without bound.
//! Both Event resources are covered: core/v1 and events.k8s.io/v1 are stored apart here.

use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use serde_json::Value;

use super::api_resource;
use crate::registry::kinds::{RESOURCES, ResourceInfo};

/// When the event last happened: the latest of its timestamps, in either shape (events.k8s.io
/// `eventTime`, `series.lastObservedTime` and `deprecatedLastTimestamp`; core/v1
/// `lastTimestamp`, `eventTime` and `series.lastObservedTime`), and when it was created.
fn last_seen(event: &DynamicObject) -> Option<jiff::Timestamp> {
    let data = &event.data;
    let field = |v: &Value| v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok());
    [
        field(&data["eventTime"]),
        field(&data["series"]["lastObservedTime"]),
        field(&data["deprecatedLastTimestamp"]),
        field(&data["lastTimestamp"]),
        event.metadata.creation_timestamp.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .max()
}

fn expired(event: &DynamicObject, now: jiff::Timestamp, ttl: Duration) -> bool {
    let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX);
    last_seen(event).is_some_and(|seen| now.duration_since(seen) > ttl)
}

/// The Event resources: core/v1 and events.k8s.io/v1.
fn event_resources() -> impl Iterator<Item = &'static ResourceInfo> {
    RESOURCES.iter().filter(|r| r.kind == "Event")
}

/// Deletes the expired events of `resource`, a page at a time; returns how many went.
async fn pass(client: &kube::Client, resource: &ResourceInfo, ttl: Duration) -> Result<usize, kube::Error> {
    let ar = api_resource(resource);
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let now = jiff::Timestamp::now();
    let mut deleted = 0;
    let mut params = ListParams::default().limit(500);
    loop {
        let page = all.list(&params).await?;
        for event in page.items.iter().filter(|e| expired(e, now, ttl)) {
            let (Some(namespace), Some(name)) = (&event.metadata.namespace, &event.metadata.name) else { continue };
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
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
        for resource in event_resources() {
            match pass(&client, resource, ttl).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deleted = n, api_version = %resource.api_version(), "expired events deleted"),
                Err(e) => tracing::warn!(error = %e, api_version = %resource.api_version(), "event TTL pass failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn both_event_resources_are_covered() {
        let mut versions: Vec<String> = event_resources().map(|r| r.api_version()).collect();
        versions.sort();
        assert_eq!(versions, ["events.k8s.io/v1", "v1"]);
    }

    #[test]
    fn core_events_expire_a_ttl_after_they_were_last_seen() {
        let now: jiff::Timestamp = "2026-01-01T02:00:00Z".parse().unwrap();
        let hour = Duration::from_secs(3600);
        let old = event(json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "involvedObject": {}, "lastTimestamp": "2026-01-01T00:30:00Z"}));
        assert!(expired(&old, now, hour));
        let repeated = event(json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "involvedObject": {}, "lastTimestamp": "2026-01-01T00:30:00Z",
            "series": {"count": 4, "lastObservedTime": "2026-01-01T01:30:00.000000Z"}}));
        assert!(!expired(&repeated, now, hour), "a series seen within the hour stays");
        let fresh = event(json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {}, "eventTime": "2026-01-01T01:59:00.000000Z"}));
        assert!(!expired(&fresh, now, hour));
        let undated = event(json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {}}));
        assert!(!expired(&undated, now, hour), "an event without any time is left alone");
    }

    #[test]
    fn events_k8s_io_events_expire_by_their_own_fields() {
        let now: jiff::Timestamp = "2026-01-01T02:00:00Z".parse().unwrap();
        let hour = Duration::from_secs(3600);
        let old = event(json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "eventTime": "2026-01-01T00:10:00.000000Z", "regarding": {}, "reason": "Pulled"}));
        assert!(expired(&old, now, hour));
        let repeated = event(json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "eventTime": "2026-01-01T00:10:00.000000Z",
            "series": {"count": 3, "lastObservedTime": "2026-01-01T01:45:00.000000Z"}}));
        assert!(!expired(&repeated, now, hour), "a series seen within the hour stays");
        let migrated = event(json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "deprecatedLastTimestamp": "2026-01-01T01:30:00Z"}));
        assert!(!expired(&migrated, now, hour), "deprecatedLastTimestamp counts");
        let stale_migrated = event(json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "deprecatedLastTimestamp": "2026-01-01T00:30:00Z"}));
        assert!(expired(&stale_migrated, now, hour));
    }
}
