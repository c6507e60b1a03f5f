//! Events recorded by the control plane's own API clients (the scheduler and the controllers),
//! as kube-controller-manager's event recorder does: fire-and-forget, so a reconcile never
//! waits on an Event write, and a failed write is only logged.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::Resource;
use kube::api::{Api, PostParams};

/// Normal or Warning, as `Event.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Records Events on behalf of one component (`default-scheduler`, `deployment-controller`, …).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: &'static str,
}

/// A reference to `obj` for `Event.involvedObject`.
pub fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    let meta = obj.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}

impl Recorder {
    pub fn new(client: kube::Client, component: &'static str) -> Self {
        Recorder { client, component }
    }

    /// Records an event about `obj` now; returns at once.
    pub fn record<K: Resource<DynamicType = ()>>(&self, obj: &K, type_: EventType, reason: &str, message: &str) {
        self.record_at(reference(obj), jiff::Timestamp::now(), type_, reason, message);
    }

    /// Records an event about `object` stamped `at` (for events that must sort before ones
    /// another component may write first); returns at once.
    pub fn record_at(
        &self,
        object: ObjectReference,
        at: jiff::Timestamp,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let name = format!("{}.{:x}", object.name.as_deref().unwrap_or_default(), at.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta { name: Some(name), namespace: Some(namespace.clone()), ..Default::default() },
            involved_object: object,
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(type_.as_str().into()),
            source: Some(EventSource { component: Some(self.component.into()), host: None }),
            first_timestamp: Some(Time(at)),
            last_timestamp: Some(Time(at)),
            event_time: Some(MicroTime(at)),
            count: Some(1),
            reporting_component: Some(self.component.into()),
            reporting_instance: Some(self.component.into()),
            action: Some(reason.into()),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(error = %e, "cannot record an event");
            }
        });
    }
}
