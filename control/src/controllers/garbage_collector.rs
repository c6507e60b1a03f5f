//! The garbage collector: deletes objects whose owners are gone and carries out
//! Foreground and Orphan deletion (ownerReferences, blockOwnerDeletion, finalizers), as
//! kube-controller-manager's garbagecollector does.
//!
//! It keeps a graph of every object's uid, owners and deletion state, fed by metadata watches
//! of every kind the API serves (Events aside: nothing owns them and they are many), so a
//! watch event costs a map update and only objects whose situation changed are looked at:
//! - a dependent whose owners are all absent (no object with that uid, checked with a live GET
//!   by name, since the graph may lag) is deleted in the background, pinned to the
//!   resourceVersion the graph saw (a reference removed meanwhile makes the delete fail);
//! - an owner marked with the `orphan` finalizer has its ownerReferences removed from its
//!   dependents, then the finalizer;
//! - an owner marked with `foregroundDeletion` has its dependents deleted, and loses the
//!   finalizer once no dependent with `blockOwnerDeletion` is left.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::api::{
    Api, DeleteParams, DynamicObject, ObjectMeta, PartialObjectMeta, Patch, PatchParams, Preconditions,
    PropagationPolicy,
};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::mpsc;

use super::api_resource;
use crate::registry::kinds::{self, RESOURCES, ResourceInfo};
use crate::registry::well_known::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};

/// How many objects are worked on at once.
const WORKERS: usize = 8;
/// How many uids known to be absent are remembered (saves a GET per dependent of a deleted owner).
const ABSENT_CACHE: usize = 50_000;
/// Wait before retrying an object whose handling failed.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
enum GcError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
}

/// An owner reference as the graph keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    uid: String,
    api_version: String,
    kind: String,
    name: String,
    block: bool,
}

/// What the graph knows of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    /// Index into [`RESOURCES`].
    resource: usize,
    namespace: Option<String>,
    name: String,
    /// The version the graph last saw: a deletion decided from it is made on that version only.
    resource_version: Option<String>,
    owners: Vec<Owner>,
    /// deletionTimestamp is set.
    deleting: bool,
    orphan: bool,
    foreground: bool,
}

fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

/// An object deleted in the foreground, waiting for its dependents to go.
fn waits_for_dependents(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some() && has_finalizer(meta, FOREGROUND_FINALIZER)
}

impl Item {
    fn from_meta(resource: usize, meta: &ObjectMeta) -> Option<(String, Item)> {
        let uid = meta.uid.clone()?;
        let owners = meta
            .owner_references
            .iter()
            .flatten()
            .map(|r| Owner {
                uid: r.uid.clone(),
                api_version: r.api_version.clone(),
                kind: r.kind.clone(),
                name: r.name.clone(),
                block: r.block_owner_deletion == Some(true),
            })
            .collect();
        let item = Item {
            resource,
            namespace: meta.namespace.clone().filter(|n| !n.is_empty()),
            name: meta.name.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone(),
            owners,
            deleting: meta.deletion_timestamp.is_some(),
            orphan: has_finalizer(meta, ORPHAN_FINALIZER),
            foreground: has_finalizer(meta, FOREGROUND_FINALIZER),
        };
        Some((uid, item))
    }

    /// An owner marked for Foreground deletion, waiting for its dependents to go.
    fn deleting_dependents(&self) -> bool {
        self.deleting && self.foreground
    }
}

/// The ownership graph: objects by uid, and for every owner uid (seen or not) the uids of the
/// objects that name it.
#[derive(Debug, Default)]
struct Graph {
    items: HashMap<String, Item>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// Records an added or changed object; returns the uids to look at because of it.
    fn apply(&mut self, uid: &str, item: Item) -> Vec<String> {
        let mut work = Vec::new();
        let old_owners: Vec<Owner> = self.items.get(uid).map(|old| old.owners.clone()).unwrap_or_default();
        for gone in old_owners.iter().filter(|o| !item.owners.iter().any(|n| n.uid == o.uid)) {
            self.unlink(&gone.uid, uid);
            // A foreground owner may have been waiting for this reference to go.
            if self.items.get(&gone.uid).is_some_and(Item::deleting_dependents) {
                work.push(gone.uid.clone());
            }
        }
        for owner in &item.owners {
            self.dependents.entry(owner.uid.clone()).or_default().insert(uid.to_string());
        }
        let owner_side = item.deleting && (item.orphan || item.foreground);
        let dependent_side =
            !item.deleting && item.owners.iter().any(|o| self.items.get(&o.uid).is_none_or(Item::deleting_dependents));
        if owner_side || dependent_side {
            work.push(uid.to_string());
        }
        self.items.insert(uid.to_string(), item);
        work
    }

    /// Forgets a deleted object; returns the uids to look at because of it: its dependents
    /// (their owner is gone) and its owners deleting in the foreground (one fewer to wait for).
    fn remove(&mut self, uid: &str) -> Vec<String> {
        let Some(item) = self.items.remove(uid) else { return Vec::new() };
        let mut work: Vec<String> = Vec::new();
        for owner in &item.owners {
            self.unlink(&owner.uid, uid);
            if self.items.get(&owner.uid).is_some_and(Item::deleting_dependents) {
                work.push(owner.uid.clone());
            }
        }
        work.extend(self.dependents.get(uid).into_iter().flatten().cloned());
        work
    }

    fn unlink(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }

    /// The objects known to name `owner` as an owner.
    fn dependents_of(&self, owner: &str) -> Vec<String> {
        self.dependents.get(owner).into_iter().flatten().filter(|d| self.items.contains_key(*d)).cloned().collect()
    }

    /// For an owner deleting in the foreground: its dependents not yet being deleted (to
    /// delete), and how many dependents still block its deletion (blockOwnerDeletion).
    fn foreground_state(&self, owner: &str) -> (Vec<String>, usize) {
        let mut to_delete = Vec::new();
        let mut blocking = 0;
        for uid in self.dependents_of(owner) {
            let item = &self.items[&uid];
            if item.owners.iter().any(|o| o.uid == owner && o.block) {
                blocking += 1;
            }
            if !item.deleting {
                to_delete.push(uid);
            }
        }
        (to_delete, blocking)
    }

    /// Every uid the graph holds of resource `resource` (to drop those a relist did not see).
    fn uids_of(&self, resource: usize) -> Vec<String> {
        self.items.iter().filter(|(_, i)| i.resource == resource).map(|(u, _)| u.clone()).collect()
    }
}

/// How an owner stands, for one of its dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerState {
    /// It exists and is not waiting for its dependents.
    Solid,
    /// No object with its uid exists.
    Absent,
    /// It is being deleted in the foreground.
    WaitingForDependents,
}

/// What to do with a dependent, given how each of its owners stands.
#[derive(Debug, Clone, PartialEq)]
enum Decision {
    Keep,
    /// Remove the references to these owner uids (absent or waiting owners, when a solid one
    /// remains).
    RemoveReferences(Vec<String>),
    Delete(PropagationPolicy),
}

/// kube-controller-manager's attemptToDeleteItem decision.
fn decide(item: &Item, owners: &[(Owner, OwnerState)], has_dependents: bool) -> Decision {
    if item.deleting || owners.is_empty() {
        return Decision::Keep;
    }
    let with = |state: OwnerState| owners.iter().filter(move |(_, s)| *s == state).map(|(o, _)| o.uid.clone());
    if with(OwnerState::Solid).next().is_some() {
        let stale: Vec<String> = with(OwnerState::Absent).chain(with(OwnerState::WaitingForDependents)).collect();
        return if stale.is_empty() { Decision::Keep } else { Decision::RemoveReferences(stale) };
    }
    if with(OwnerState::WaitingForDependents).next().is_some() && has_dependents {
        // Its owner waits for the whole chain below it.
        return Decision::Delete(PropagationPolicy::Foreground);
    }
    Decision::Delete(if item.orphan {
        PropagationPolicy::Orphan
    } else if item.foreground {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    })
}

/// How the collector deletes the dependent `uid`: only the version of it the decision was made
/// on. The graph may lag (an owner's delete event seen before the update that removed the
/// reference to it, say): then the API answers 409 and that update's event queues it again.
fn delete_params(uid: &str, item: &Item, policy: PropagationPolicy) -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(policy),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: item.resource_version.clone(),
        }),
        ..Default::default()
    }
}

fn api(client: &kube::Client, resource: &ResourceInfo, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace.filter(|_| resource.namespaced) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &api_resource(resource)),
        None => Api::all_with(client.clone(), &api_resource(resource)),
    }
}

fn not_found_or_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
}

/// The bookkeeping of the work queue, as client-go's workqueue: a uid is queued once however
/// many events name it, and never worked on by two workers at once (one queued while it is
/// being worked on is sent again when that is done).
#[derive(Debug, Default)]
struct Pending {
    /// Waiting to be worked on.
    dirty: HashSet<String>,
    /// Being worked on.
    processing: HashSet<String>,
}

impl Pending {
    /// Marks `uid` as waiting; whether to send it to the workers now.
    fn add(&mut self, uid: &str) -> bool {
        self.dirty.insert(uid.to_string()) && !self.processing.contains(uid)
    }

    /// A worker takes `uid`.
    fn start(&mut self, uid: &str) {
        self.dirty.remove(uid);
        self.processing.insert(uid.to_string());
    }

    /// A worker is done with `uid`; whether to send it again (it was queued meanwhile).
    fn done(&mut self, uid: &str) -> bool {
        self.processing.remove(uid);
        self.dirty.contains(uid)
    }
}

struct Shared {
    client: kube::Client,
    graph: Mutex<Graph>,
    pending: Mutex<Pending>,
    absent: Mutex<HashSet<String>>,
    queue: mpsc::UnboundedSender<String>,
}

impl Shared {
    fn enqueue(&self, uids: Vec<String>) {
        let mut pending = self.pending.lock().expect("queue lock");
        for uid in uids {
            if pending.add(&uid) {
                let _ = self.queue.send(uid);
            }
        }
    }

    fn retry_later(self: &Arc<Self>, uid: String) {
        let shared = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RETRY).await;
            shared.enqueue(vec![uid]);
        });
    }

    /// How `owner` (named by a dependent in `namespace`) stands: from the graph when it holds
    /// the uid, otherwise from a live GET by name (the graph may not have seen it yet).
    async fn owner_state(&self, owner: &Owner, namespace: Option<&str>) -> Result<OwnerState, GcError> {
        if let Some(item) = self.graph.lock().expect("graph lock").items.get(&owner.uid) {
            return Ok(if item.deleting_dependents() { OwnerState::WaitingForDependents } else { OwnerState::Solid });
        }
        if self.absent.lock().expect("absent lock").contains(&owner.uid) {
            return Ok(OwnerState::Absent);
        }
        let Some(resource) = kinds::by_kind(&owner.api_version, &owner.kind) else {
            // A kind this server does not serve cannot be checked: never delete for it.
            return Ok(OwnerState::Solid);
        };
        let state = match api(&self.client, resource, namespace).get_metadata_opt(&owner.name).await? {
            Some(found) if found.metadata.uid.as_deref() == Some(&owner.uid) => {
                if waits_for_dependents(&found.metadata) { OwnerState::WaitingForDependents } else { OwnerState::Solid }
            }
            _ => OwnerState::Absent,
        };
        if state == OwnerState::Absent {
            let mut absent = self.absent.lock().expect("absent lock");
            if absent.len() >= ABSENT_CACHE {
                absent.clear();
            }
            absent.insert(owner.uid.clone());
        }
        Ok(state)
    }

    async fn process(self: &Arc<Self>, uid: &str) -> Result<(), GcError> {
        let Some(item) = self.graph.lock().expect("graph lock").items.get(uid).cloned() else { return Ok(()) };
        let resource = &RESOURCES[item.resource];
        let api = api(&self.client, resource, item.namespace.as_deref());
        if item.deleting_dependents() {
            let (to_delete, blocking) = self.graph.lock().expect("graph lock").foreground_state(uid);
            // Each dependent decides how it goes (its owner now waits for it).
            self.enqueue(to_delete);
            if blocking == 0 {
                tracing::debug!(kind = resource.kind, name = %item.name, "foreground deletion: dependents gone");
                remove_finalizer(&api, &item.name, uid, FOREGROUND_FINALIZER).await?;
            }
            return Ok(());
        }
        if item.deleting && item.orphan {
            let dependents = self.graph.lock().expect("graph lock").dependents_of(uid);
            for dependent in dependents {
                let Some(d) = self.graph.lock().expect("graph lock").items.get(&dependent).cloned() else { continue };
                let d_api = self::api(&self.client, &RESOURCES[d.resource], d.namespace.as_deref());
                remove_references(&d_api, &d.name, &dependent, &[uid.to_string()]).await?;
            }
            tracing::debug!(kind = resource.kind, name = %item.name, "orphaned its dependents");
            remove_finalizer(&api, &item.name, uid, ORPHAN_FINALIZER).await?;
            return Ok(());
        }
        let mut owners = Vec::with_capacity(item.owners.len());
        for owner in &item.owners {
            owners.push((owner.clone(), self.owner_state(owner, item.namespace.as_deref()).await?));
        }
        let has_dependents = !self.graph.lock().expect("graph lock").dependents_of(uid).is_empty();
        match decide(&item, &owners, has_dependents) {
            Decision::Keep => {}
            Decision::RemoveReferences(stale) => remove_references(&api, &item.name, uid, &stale).await?,
            Decision::Delete(policy) => {
                tracing::info!(kind = resource.kind, namespace = ?item.namespace, name = %item.name, ?policy,
                    "deleting an object whose owners are gone");
                match api.delete(&item.name, &delete_params(uid, &item, policy)).await {
                    Ok(_) => {}
                    Err(e) if not_found_or_conflict(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

/// Reads the object `name` if it still is the one with `uid`.
async fn latest(
    api: &Api<DynamicObject>,
    name: &str,
    uid: &str,
) -> Result<Option<PartialObjectMeta<DynamicObject>>, GcError> {
    Ok(api.get_metadata_opt(name).await?.filter(|o| o.metadata.uid.as_deref() == Some(uid)))
}

/// Writes `metadata` (finalizers or ownerReferences) pinned to the resourceVersion it was
/// computed from; retries when someone else wrote in between.
async fn write_metadata(
    api: &Api<DynamicObject>,
    name: &str,
    uid: &str,
    change: impl Fn(&kube::api::ObjectMeta) -> Option<serde_json::Value>,
) -> Result<(), GcError> {
    for _ in 0..8 {
        let Some(current) = latest(api, name, uid).await? else { return Ok(()) };
        let Some(mut patch) = change(&current.metadata) else { return Ok(()) };
        patch["resourceVersion"] = json!(current.metadata.resource_version);
        match api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": patch}))).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn remove_finalizer(api: &Api<DynamicObject>, name: &str, uid: &str, finalizer: &str) -> Result<(), GcError> {
    write_metadata(api, name, uid, |meta| {
        let finalizers = meta.finalizers.clone().unwrap_or_default();
        finalizers
            .iter()
            .any(|f| f == finalizer)
            .then(|| json!({"finalizers": finalizers.iter().filter(|f| *f != finalizer).collect::<Vec<_>>()}))
    })
    .await
}

async fn remove_references(api: &Api<DynamicObject>, name: &str, uid: &str, owners: &[String]) -> Result<(), GcError> {
    write_metadata(api, name, uid, |meta| {
        let refs = meta.owner_references.clone().unwrap_or_default();
        refs.iter()
            .any(|r| owners.contains(&r.uid))
            .then(|| json!({"ownerReferences": refs.iter().filter(|r| !owners.contains(&r.uid)).collect::<Vec<_>>()}))
    })
    .await
}

/// The kinds the collector watches: every served kind but Events and the reviews (create-only:
/// they cannot be listed, and a kind never listed would keep the collector from syncing).
fn watched() -> impl Iterator<Item = (usize, &'static ResourceInfo)> {
    RESOURCES.iter().enumerate().filter(|(_, r)| r.kind != "Event" && !r.is_review())
}

/// Feeds the graph from the watches; opens `synced` once every kind was listed.
async fn observe(shared: Arc<Shared>, synced: tokio::sync::watch::Sender<bool>) {
    let streams: Vec<BoxStream<'static, (usize, watcher::Event<PartialObjectMeta<DynamicObject>>)>> = watched()
        .map(|(index, r)| {
            let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(shared.client.clone(), &api_resource(r));
            watcher(api, watcher::Config::default())
                .default_backoff()
                .filter_map(move |event| async move {
                    match event {
                        Ok(event) => Some((index, event)),
                        Err(e) => {
                            tracing::debug!(error = %e, "garbage collector watch error");
                            None
                        }
                    }
                })
                .boxed()
        })
        .collect();
    let kinds = streams.len();
    let mut listed: HashSet<usize> = HashSet::new();
    let mut relisting: HashMap<usize, HashSet<String>> = HashMap::new();
    let mut events = futures::stream::select_all(streams);
    while let Some((index, event)) = events.next().await {
        let work = {
            let mut graph = shared.graph.lock().expect("graph lock");
            match event {
                watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                    match Item::from_meta(index, &obj.metadata) {
                        Some((uid, item)) => {
                            if let Some(seen) = relisting.get_mut(&index) {
                                seen.insert(uid.clone());
                            }
                            graph.apply(&uid, item)
                        }
                        None => Vec::new(),
                    }
                }
                watcher::Event::Delete(obj) => obj.metadata.uid.as_deref().map(|u| graph.remove(u)).unwrap_or_default(),
                watcher::Event::Init => {
                    relisting.insert(index, HashSet::new());
                    Vec::new()
                }
                watcher::Event::InitDone => {
                    // Objects deleted while the watch was down are gone from a relist.
                    let seen = relisting.remove(&index).unwrap_or_default();
                    let mut work = Vec::new();
                    for uid in graph.uids_of(index).into_iter().filter(|u| !seen.contains(u)) {
                        work.extend(graph.remove(&uid));
                    }
                    if listed.insert(index) && listed.len() == kinds {
                        let _ = synced.send(true);
                    }
                    work
                }
            }
        };
        shared.enqueue(work);
    }
}

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        client,
        graph: Mutex::new(Graph::default()),
        pending: Mutex::new(Pending::default()),
        absent: Mutex::new(HashSet::new()),
        queue: tx,
    });
    let (synced_tx, mut synced) = tokio::sync::watch::channel(false);
    tokio::spawn(observe(shared.clone(), synced_tx));
    // Decisions wait until every kind was listed once, so a missing owner is not just unseen.
    if synced.wait_for(|s| *s).await.is_err() {
        return;
    }
    tracing::debug!("garbage collector synced");
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
        .for_each_concurrent(WORKERS, |uid| {
            let shared = shared.clone();
            async move {
                shared.pending.lock().expect("queue lock").start(&uid);
                let result = shared.process(&uid).await;
                if shared.pending.lock().expect("queue lock").done(&uid) {
                    let _ = shared.queue.send(uid.clone());
                }
                if let Err(e) = result {
                    tracing::warn!(error = %e, uid, "garbage collection failed; retrying");
                    shared.retry_later(uid);
                }
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str, block: bool) -> Owner {
        Owner { uid: uid.into(), api_version: "v1".into(), kind: "ConfigMap".into(), name: uid.into(), block }
    }

    fn item(owners: Vec<Owner>) -> Item {
        Item {
            resource: 0,
            namespace: Some("default".into()),
            name: "x".into(),
            resource_version: Some("7".into()),
            owners,
            deleting: false,
            orphan: false,
            foreground: false,
        }
    }

    #[test]
    fn a_dependent_whose_owners_are_all_absent_is_deleted_in_the_background() {
        let dep = item(vec![owner("a", true), owner("b", false)]);
        let gone = [(owner("a", true), OwnerState::Absent), (owner("b", false), OwnerState::Absent)];
        assert_eq!(decide(&dep, &gone, false), Decision::Delete(PropagationPolicy::Background));
        // One owner left: only the dangling reference goes.
        let one_left = [(owner("a", true), OwnerState::Absent), (owner("b", false), OwnerState::Solid)];
        assert_eq!(decide(&dep, &one_left, false), Decision::RemoveReferences(vec!["a".into()]));
        let all_there = [(owner("a", true), OwnerState::Solid), (owner("b", false), OwnerState::Solid)];
        assert_eq!(decide(&dep, &all_there, false), Decision::Keep);
        // Objects without owners, or already going, are left alone.
        assert_eq!(decide(&item(vec![]), &[], false), Decision::Keep);
        let mut going = dep.clone();
        going.deleting = true;
        assert_eq!(decide(&going, &gone, false), Decision::Keep);
    }

    #[test]
    fn a_dependent_of_a_foreground_owner_goes_and_takes_its_own_dependents_first() {
        let dep = item(vec![owner("a", true)]);
        let waiting = [(owner("a", true), OwnerState::WaitingForDependents)];
        assert_eq!(decide(&dep, &waiting, true), Decision::Delete(PropagationPolicy::Foreground));
        assert_eq!(decide(&dep, &waiting, false), Decision::Delete(PropagationPolicy::Background));
    }

    #[test]
    fn a_dependent_is_deleted_only_as_the_graph_saw_it() {
        // The owner's delete event came first; the dependent's update that dropped the
        // reference is still on its way. The delete is pinned to the version decided on, so
        // the API refuses it (409) and the update's event queues the dependent again.
        let dep = item(vec![owner("a", true)]);
        let params = delete_params("d", &dep, PropagationPolicy::Background);
        let preconditions = params.preconditions.unwrap();
        assert_eq!((preconditions.uid.as_deref(), preconditions.resource_version.as_deref()), (Some("d"), Some("7")));
        assert_eq!(params.propagation_policy, Some(PropagationPolicy::Background));
        // That update reaches the graph: nothing left to look at.
        let mut graph = Graph::default();
        graph.apply("d", dep);
        let mut orphaned = item(vec![]);
        orphaned.resource_version = Some("8".into());
        assert!(graph.apply("d", orphaned).is_empty());
    }

    #[test]
    fn a_uid_is_queued_once_and_never_worked_on_twice_at_once() {
        let mut pending = Pending::default();
        assert!(pending.add("a"));
        assert!(!pending.add("a"), "already waiting");
        pending.start("a");
        assert!(!pending.add("a"), "being worked on: waits for the worker");
        assert!(!pending.add("a"));
        assert!(pending.done("a"), "queued meanwhile: sent again once done");
        pending.start("a");
        assert!(!pending.done("a"));
        assert!(pending.add("a"));
    }

    #[test]
    fn the_graph_queues_dependents_when_their_owner_is_deleted() {
        let mut graph = Graph::default();
        let mut owner_item = item(vec![]);
        owner_item.name = "a".into();
        assert!(graph.apply("a", owner_item.clone()).is_empty());
        // A dependent of a known owner needs no look; one of an unseen owner does.
        assert!(graph.apply("d1", item(vec![owner("a", true)])).is_empty());
        assert_eq!(graph.apply("d2", item(vec![owner("zzz", true)])), vec!["d2".to_string()]);
        let mut work = graph.remove("a");
        work.sort();
        assert_eq!(work, vec!["d1".to_string()]);
        assert_eq!(graph.dependents_of("a"), vec!["d1".to_string()]);
    }

    #[test]
    fn foreground_deletion_completes_when_no_blocking_dependent_remains() {
        let mut graph = Graph::default();
        let mut owner_item = item(vec![]);
        owner_item.deleting = true;
        owner_item.foreground = true;
        assert_eq!(graph.apply("a", owner_item), vec!["a".to_string()]);
        graph.apply("blocking", item(vec![owner("a", true)]));
        graph.apply("loose", item(vec![owner("a", false)]));
        let (mut to_delete, blocking) = graph.foreground_state("a");
        to_delete.sort();
        assert_eq!((to_delete, blocking), (vec!["blocking".to_string(), "loose".to_string()], 1));
        // The blocking dependent is being deleted: it still blocks until it is gone.
        let mut going = item(vec![owner("a", true)]);
        going.deleting = true;
        graph.apply("blocking", going);
        assert_eq!(graph.foreground_state("a"), (vec!["loose".to_string()], 1));
        // Gone: the owner is looked at again and nothing blocks it any more.
        assert_eq!(graph.remove("blocking"), vec!["a".to_string()]);
        assert_eq!(graph.foreground_state("a").1, 0);
    }

    #[test]
    fn dropping_a_reference_to_a_foreground_owner_requeues_it() {
        let mut graph = Graph::default();
        let mut owner_item = item(vec![]);
        owner_item.deleting = true;
        owner_item.foreground = true;
        graph.apply("a", owner_item);
        graph.apply("d", item(vec![owner("a", true), owner("b", false)]));
        assert_eq!(graph.apply("d", item(vec![owner("b", false)])), vec!["a".to_string(), "d".to_string()]);
        assert!(graph.dependents_of("a").is_empty());
    }

    #[test]
    fn an_orphaning_owner_is_queued_with_its_dependents_known() {
        let mut graph = Graph::default();
        graph.apply("a", item(vec![]));
        graph.apply("d", item(vec![owner("a", true)]));
        let mut marked = item(vec![]);
        marked.deleting = true;
        marked.orphan = true;
        assert_eq!(graph.apply("a", marked), vec!["a".to_string()]);
        assert_eq!(graph.dependents_of("a"), vec!["d".to_string()]);
    }
}
