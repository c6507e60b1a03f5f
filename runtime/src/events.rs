//! Recording core/v1 Events about pods, as the kubelet does (source component `kubelet`),
//! counting repeats of the same event instead of creating new ones, written in the background so
//! that starting a container never waits for them.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

/// What makes two events the same one: (pod uid, reason, message).
type EventKey = (String, String, String);

/// Writers, each owning the events of the pods whose uid hashes to it: one pod's events are
/// written in order, and the pods of a busy node do not wait on one connection.
const WRITERS: usize = 4;

/// One event to write, or the end of a pod.
enum Job {
    Record(Record),
    Forget(String),
}

struct Record {
    namespace: String,
    pod: String,
    uid: String,
    container: Option<String>,
    kind: Kind,
    reason: String,
    message: String,
    at: Timestamp,
}

/// Records Events without making the pod worker wait for the API: `record` queues, background
/// writers create (or count up) the Event objects.
pub struct Recorder {
    queues: Vec<mpsc::UnboundedSender<Job>>,
}

impl Recorder {
    /// Starts the writers on the current tokio runtime.
    pub fn new(client: kube::Client, node: String) -> Self {
        let queues = (0..WRITERS)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(write_events(client.clone(), node.clone(), rx));
                tx
            })
            .collect();
        Self { queues }
    }

    fn queue(&self, uid: &str) -> &mpsc::UnboundedSender<Job> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        uid.hash(&mut hasher);
        &self.queues[hasher.finish() as usize % self.queues.len()]
    }

    /// Records `reason`/`message` about `pod` (and, if given, one of its containers).
    pub fn record(&self, pod: &Pod, container: Option<&str>, kind: Kind, reason: &str, message: &str) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let record = Record {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            uid: uid.clone(),
            container: container.map(String::from),
            kind,
            reason: reason.into(),
            message: message.into(),
            at: Timestamp::now(),
        };
        let _ = self.queue(&uid).send(Job::Record(record));
    }

    /// Forgets the repeat counts of a pod that is gone (after its queued events are written).
    pub fn forget(&self, uid: &str) {
        let _ = self.queue(uid).send(Job::Forget(uid.to_string()));
    }
}

/// Writes the events of one queue in order; a repeat (same pod, reason and message) bumps the
/// count of the Event written before.
async fn write_events(client: kube::Client, node: String, mut jobs: mpsc::UnboundedReceiver<Job>) {
    // (pod uid, reason, message) → (event name, count)
    let mut seen: HashMap<EventKey, (String, i32)> = HashMap::new();
    while let Some(job) = jobs.recv().await {
        let record = match job {
            Job::Record(record) => record,
            Job::Forget(uid) => {
                seen.retain(|(u, _, _), _| *u != uid);
                continue;
            }
        };
        let api: Api<Event> = Api::namespaced(client.clone(), &record.namespace);
        let key = (record.uid.clone(), record.reason.clone(), record.message.clone());
        if let Some((name, count)) = seen.get(&key).cloned() {
            let patch = json!({"count": count + 1, "lastTimestamp": Time(record.at)});
            if api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await.is_ok() {
                seen.insert(key, (name, count + 1));
                continue;
            }
        }
        let name = format!("{}.{:x}", record.pod, record.at.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(record.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(record.pod.clone()),
                namespace: Some(record.namespace.clone()),
                uid: Some(record.uid.clone()),
                field_path: record.container.as_ref().map(|c| format!("spec.containers{{{c}}}")),
                ..Default::default()
            },
            reason: Some(record.reason.clone()),
            message: Some(record.message.clone()),
            type_: Some(match record.kind {
                Kind::Normal => "Normal".into(),
                Kind::Warning => "Warning".into(),
            }),
            source: Some(EventSource { component: Some("kubelet".into()), host: Some(node.clone()) }),
            first_timestamp: Some(Time(record.at)),
            last_timestamp: Some(Time(record.at)),
            event_time: Some(MicroTime(record.at)),
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(node.clone()),
            action: Some(record.reason.clone()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                seen.insert(key, (name, 1));
            }
            Err(e) => tracing::warn!(error = %e, reason = record.reason, "cannot record event"),
        }
    }
}
