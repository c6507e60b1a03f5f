//! Recording core/v1 Events about pods, as the kubelet does (source component `kubelet`),
//! counting repeats of the same event instead of creating new ones.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

/// What makes two events the same one: (pod uid, reason, message).
type EventKey = (String, String, String);

pub struct Recorder {
    client: kube::Client,
    node: String,
    /// Events recorded so far → (event name, count), so repeats bump the count.
    seen: Mutex<HashMap<EventKey, (String, i32)>>,
}

impl Recorder {
    pub fn new(client: kube::Client, node: String) -> Self {
        Self { client, node, seen: Mutex::new(HashMap::new()) }
    }

    /// Records `reason`/`message` about `pod` (and, if given, one of its containers).
    pub async fn record(&self, pod: &Pod, container: Option<&str>, kind: Kind, reason: &str, message: &str) {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = Timestamp::now();
        let key = (uid.clone(), reason.to_string(), message.to_string());
        let repeat = self.seen.lock().expect("events lock").get(&key).cloned();
        if let Some((name, count)) = repeat {
            let patch = json!({"count": count + 1, "lastTimestamp": Time(now)});
            if api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await.is_ok() {
                self.seen.lock().expect("events lock").insert(key, (name, count + 1));
                return;
            }
        }
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let name = format!("{pod_name}.{:x}", now.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace.clone()), ..Default::default() },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod_name),
                namespace: Some(namespace),
                uid: Some(uid),
                field_path: container.map(|c| format!("spec.containers{{{c}}}")),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(match kind {
                Kind::Normal => "Normal".into(),
                Kind::Warning => "Warning".into(),
            }),
            source: Some(EventSource { component: Some("kubelet".into()), host: Some(self.node.clone()) }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            action: Some(reason.into()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                self.seen.lock().expect("events lock").insert(key, (name, 1));
            }
            Err(e) => tracing::warn!(error = %e, reason, "cannot record event"),
        }
    }

    /// Forgets the repeat counts of a pod that is gone.
    pub fn forget(&self, uid: &str) {
        self.seen.lock().expect("events lock").retain(|(u, _, _), _| u != uid);
    }
}
