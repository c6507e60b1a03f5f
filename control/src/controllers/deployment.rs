//! Deployment: rolls ReplicaSets (RollingUpdate or Recreate) and keeps revision history, in
//! the manner of kube-controller-manager's deployment controller: the ReplicaSet whose template
//! matches the Deployment's is the new one (named and selected by pod-template-hash), the
//! others are old; a rolling step grows the new within maxSurge and shrinks the old within
//! maxUnavailable; scaling mid-rollout is proportional; a paused Deployment only scales.
//! The decisions are pure functions in the submodules; this module reads and writes the API.

pub mod history;
pub mod rolling;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::watcher;
use serde_json::json;

use self::history::{HASH_LABEL, REVISION};
use self::rolling::{Params, RsState};
use super::workload::{
    claim, controller_of, controller_ref, is_empty_selector, is_terminal, owners_concerned, selector_query,
};
use super::{Context, api_message, retry_soon};
use crate::events::EventType;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("hash collision creating ReplicaSet {0}; retrying with collisionCount raised")]
    Collision(String),
}

/// One reconcile of one Deployment: the Deployment as last read or written, and its API.
struct Sync<'a> {
    ctx: &'a Context,
    d: Deployment,
    name: String,
    deployments: Api<Deployment>,
    sets: Api<ReplicaSet>,
}

fn template_of(d: &Deployment) -> k8s_openapi::api::core::v1::PodTemplateSpec {
    d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default()
}

fn states(sets: &[ReplicaSet]) -> Vec<RsState> {
    sets.iter().map(RsState::of).collect()
}

fn by_creation(sets: &mut [ReplicaSet]) {
    sets.sort_by(|a, b| {
        let created = |r: &ReplicaSet| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a).cmp(&created(b)).then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// The new ReplicaSet (if any) and the old ones.
type Split = (Option<ReplicaSet>, Vec<ReplicaSet>);

/// Splits `sets` into the one running the Deployment's template (the oldest such) and the rest.
fn split_new(d: &Deployment, mut sets: Vec<ReplicaSet>) -> Split {
    by_creation(&mut sets);
    let template = template_of(d);
    let position = sets.iter().position(|rs| {
        rs.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| history::equal_ignore_hash(t, &template))
    });
    let new = position.map(|i| sets.remove(i));
    (new, sets)
}

impl Sync<'_> {
    fn params(&self) -> Params {
        Params::of(&self.d)
    }

    fn annotations(&self) -> BTreeMap<String, String> {
        self.d.metadata.annotations.clone().unwrap_or_default()
    }

    /// Writes the status if it changed.
    async fn write_status(&mut self, status: DeploymentStatus) -> Result<(), ReconcileError> {
        if self.d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut body = serde_json::to_value(&status).unwrap_or_default();
        for field in
            ["replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas", "conditions"]
        {
            if body.get(field).is_none() {
                body[field] = serde_json::Value::Null;
            }
        }
        let patch = Patch::Merge(json!({ "status": body }));
        self.d = self.deployments.patch_status(&self.name, &PatchParams::default(), &patch).await?;
        Ok(())
    }

    /// Sets the Deployment's revision annotation.
    async fn set_revision(&mut self, revision: &str) -> Result<(), ReconcileError> {
        if self.annotations().get(REVISION).map(String::as_str) == Some(revision) {
            return Ok(());
        }
        let patch = Patch::Merge(json!({"metadata": {"annotations": {REVISION: revision}}}));
        let status = self.d.status.clone();
        self.d = self.deployments.patch(&self.name, &PatchParams::default(), &patch).await?;
        // Keep the status this reconcile has computed so far (it may not be written yet).
        self.d.status = status;
        Ok(())
    }

    /// Lists the ReplicaSets this Deployment controls, adopting orphans its selector matches and
    /// releasing those it no longer matches (ControllerRefManager).
    async fn claim_replica_sets(&self) -> Result<Vec<ReplicaSet>, ReconcileError> {
        let selector = self.d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        let deleting = self.d.metadata.deletion_timestamp.is_some();
        Ok(claim(&self.sets, &controller_ref(&self.d), &selector, deleting).await?)
    }

    /// Sizes a ReplicaSet (and its replicas annotations) and records ScalingReplicaSet.
    async fn scale(&mut self, rs: &ReplicaSet, to: i32) -> Result<ReplicaSet, ReconcileError> {
        let p = self.params();
        let from = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let mut annotations = rs.metadata.annotations.clone().unwrap_or_default();
        let annotate = history::set_replicas_annotations(&mut annotations, p.replicas, p.replicas + p.max_surge());
        if from == to && !annotate {
            return Ok(rs.clone());
        }
        let name = rs.metadata.name.clone().unwrap_or_default();
        let patch = json!({
            "metadata": {"annotations": {
                history::DESIRED_REPLICAS: annotations[history::DESIRED_REPLICAS],
                history::MAX_REPLICAS: annotations[history::MAX_REPLICAS],
            }},
            "spec": {"replicas": to},
        });
        let scaled = self.sets.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await?;
        if from != to {
            let way = if to > from { "up" } else { "down" };
            let message = format!("Scaled {way} replica set {name} from {from} to {to}");
            self.ctx.recorder.record(&self.d, EventType::Normal, "ScalingReplicaSet", &message);
        }
        Ok(scaled)
    }

    /// Sizes each named ReplicaSet among `sets` to its target; `sets` is updated in place.
    async fn scale_all(&mut self, sets: &mut [ReplicaSet], targets: &[(String, i32)]) -> Result<bool, ReconcileError> {
        let mut scaled = false;
        for (name, to) in targets {
            if let Some(rs) = sets.iter_mut().find(|r| r.metadata.name.as_ref() == Some(name)) {
                let from = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                *rs = self.scale(rs, *to).await?;
                scaled |= from != *to;
            }
        }
        Ok(scaled)
    }

    /// The new ReplicaSet (created when `create` and missing) and the old ones, with the
    /// revision annotations brought up to date (`getAllReplicaSetsAndSyncRevision`).
    async fn new_and_old(&mut self, split: Split, create: bool) -> Result<Split, ReconcileError> {
        let (existing, old) = split;
        let new_revision = old.iter().map(|r| history::revision(&r.metadata)).max().unwrap_or(0) + 1;
        let now = Timestamp::now();
        if let Some(rs) = existing {
            let mut annotations = rs.metadata.annotations.clone().unwrap_or_default();
            let changed = history::set_new_rs_annotations(&self.annotations(), &mut annotations, new_revision, None);
            let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let rs_min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let rs = if changed || min_ready.unwrap_or(0) != rs_min_ready.unwrap_or(0) {
                let name = rs.metadata.name.clone().unwrap_or_default();
                let patch = json!({"metadata": {"annotations": annotations}, "spec": {"minReadySeconds": min_ready}});
                self.sets.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await?
            } else {
                rs
            };
            let revision = rs.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).cloned().unwrap_or_default();
            self.set_revision(&revision).await?;
            let mut status = self.d.status.clone().unwrap_or_default();
            if status::has_progress_deadline(&self.d) && status::get_condition(&status, status::PROGRESSING).is_none() {
                let name = rs.metadata.name.clone().unwrap_or_default();
                let message = format!("Found new replica set {name:?}");
                status::set_condition(
                    &mut status,
                    status::condition(status::PROGRESSING, "True", status::FOUND_NEW_RS, message, now),
                );
                self.write_status(status).await?;
            }
            return Ok((Some(rs), old));
        }
        if !create {
            return Ok((None, old));
        }
        let rs = self.create_new(&old, new_revision, now).await?;
        Ok((Some(rs), old))
    }

    /// Creates the ReplicaSet for the current template, named by its pod-template-hash.
    async fn create_new(
        &mut self,
        old: &[ReplicaSet],
        new_revision: i64,
        now: Timestamp,
    ) -> Result<ReplicaSet, ReconcileError> {
        let p = self.params();
        let spec = self.d.spec.clone().unwrap_or_default();
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = super::workload::template_hash(&spec.template, collision_count);
        let mut template = spec.template.clone();
        let meta = template.metadata.get_or_insert_with(Default::default);
        meta.labels.get_or_insert_with(BTreeMap::new).insert(HASH_LABEL.into(), hash.clone());
        let mut selector: LabelSelector = spec.selector.clone();
        selector.match_labels.get_or_insert_with(BTreeMap::new).insert(HASH_LABEL.into(), hash.clone());
        let name = format!("{}-{hash}", self.name);
        let old_states = states(old);
        let all: Vec<&RsState> = old_states.iter().collect();
        let replicas = rolling::new_rs_replicas(&p, &all, 0);
        let mut annotations = BTreeMap::new();
        history::set_new_rs_annotations(
            &self.annotations(),
            &mut annotations,
            new_revision,
            Some((p.replicas, p.replicas + p.max_surge())),
        );
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                labels: meta.labels.clone(),
                annotations: Some(annotations),
                owner_references: Some(vec![controller_ref(&self.d)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let mut status = self.d.status.clone().unwrap_or_default();
        let created = match self.sets.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                if replicas > 0 {
                    let message = format!("Scaled up replica set {name} from 0 to {replicas}");
                    self.ctx.recorder.record(&self.d, EventType::Normal, "ScalingReplicaSet", &message);
                }
                if status::has_progress_deadline(&self.d) {
                    let message = format!("Created new replica set {name:?}");
                    let c = status::condition(status::PROGRESSING, "True", status::NEW_RS_CREATED, message, now);
                    status::set_condition(&mut status, c);
                }
                created
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let existing = self.sets.get(&name).await?;
                let ours = controller_of(&existing.metadata).map(|r| &r.uid) == self.d.metadata.uid.as_ref();
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| history::equal_ignore_hash(t, &spec.template));
                if !(ours && same) {
                    status.collision_count = Some(collision_count.unwrap_or(0) + 1);
                    self.write_status(status).await?;
                    return Err(ReconcileError::Collision(name));
                }
                existing
            }
            Err(e) => {
                let message = format!("Failed to create new replica set {name:?}: {}", api_message(&e));
                if status::has_progress_deadline(&self.d) {
                    let c =
                        status::condition(status::PROGRESSING, "False", status::FAILED_RS_CREATE, message.clone(), now);
                    status::set_condition(&mut status, c);
                    self.write_status(status).await?;
                }
                self.ctx.recorder.record(&self.d, EventType::Warning, status::FAILED_RS_CREATE, &message);
                return Err(e.into());
            }
        };
        self.set_revision(&new_revision.to_string()).await?;
        self.write_status(status).await?;
        Ok(created)
    }

    /// Deletes old ReplicaSets beyond revisionHistoryLimit (`cleanupDeployment`).
    async fn cleanup(&self, old: &[ReplicaSet]) -> Result<(), ReconcileError> {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else { return Ok(()) };
        for name in history::history_to_delete(old, limit) {
            tracing::debug!(deployment = %self.name, replicaset = %name, "deleting old replica set");
            match self.sets.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Writes the status after a rollout step and says when to look again.
    async fn sync_rollout_status(
        &mut self,
        all: &[ReplicaSet],
        new: Option<&ReplicaSet>,
    ) -> Result<Action, ReconcileError> {
        let now = Timestamp::now();
        let all_states = states(all);
        let refs: Vec<&RsState> = all_states.iter().collect();
        let new_state = new.map(RsState::of);
        let status = status::rollout_status(&self.d, &self.params(), &refs, new_state.as_ref(), now);
        let requeue = status::stuck_requeue(&self.d, &status, now);
        self.write_status(status).await?;
        Ok(requeue.map(Action::requeue).unwrap_or_else(Action::await_change))
    }

    /// Writes the counts only (scaling, paused, being deleted).
    async fn sync_status(&mut self, all: &[ReplicaSet], new: Option<&ReplicaSet>) -> Result<Action, ReconcileError> {
        let all_states = states(all);
        let refs: Vec<&RsState> = all_states.iter().collect();
        let new_state = new.map(RsState::of);
        let status = status::calculate_status(&self.d, &self.params(), &refs, new_state.as_ref(), Timestamp::now());
        self.write_status(status).await?;
        Ok(Action::await_change())
    }

    /// Scaling without a rollout (`sync`): a paused Deployment or a changed replica count.
    async fn sync(&mut self, split: Split) -> Result<Action, ReconcileError> {
        let (mut new, mut old) = self.new_and_old(split, false).await?;
        let old_states = states(&old);
        let targets = rolling::scale_targets(&self.params(), new.as_ref().map(RsState::of).as_ref(), &old_states);
        self.scale_all(&mut old, &targets).await?;
        if let Some(rs) = new.as_mut() {
            self.scale_all(std::slice::from_mut(rs), &targets).await?;
        }
        let all: Vec<ReplicaSet> = old.iter().cloned().chain(new.clone()).collect();
        if self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
            self.cleanup(&old).await?;
        }
        self.sync_status(&all, new.as_ref()).await
    }

    /// One RollingUpdate step (`rolloutRolling`).
    async fn rolling(&mut self, split: Split) -> Result<Action, ReconcileError> {
        let (new, mut old) = self.new_and_old(split, true).await?;
        let Some(mut new) = new else { return Ok(Action::requeue(Duration::from_secs(1))) };
        let p = self.params();
        let new_state = RsState::of(&new);
        let old_states = states(&old);
        let all: Vec<&RsState> = old_states.iter().chain([&new_state]).collect();
        if let Some(to) = rolling::new_rs_target(&p, &all, &new_state) {
            new = self.scale(&new, to).await?;
            let all: Vec<ReplicaSet> = old.iter().cloned().chain([new.clone()]).collect();
            return self.sync_rollout_status(&all, Some(&new)).await;
        }
        let targets = rolling::old_rs_targets(&p, &new_state, &old_states);
        let scaled = self.scale_all(&mut old, &targets).await?;
        let all: Vec<ReplicaSet> = old.iter().cloned().chain([new.clone()]).collect();
        if !scaled && status::complete(&self.d, self.d.status.as_ref().unwrap_or(&DeploymentStatus::default())) {
            self.cleanup(&old).await?;
        }
        self.sync_rollout_status(&all, Some(&new)).await
    }

    /// One Recreate step (`rolloutRecreate`): old ReplicaSets to 0, wait for their pods to go,
    /// then the new one at full size.
    async fn recreate(&mut self, split: Split) -> Result<Action, ReconcileError> {
        let (new, mut old) = self.new_and_old(split, false).await?;
        let targets: Vec<(String, i32)> =
            states(&old).into_iter().filter(|r| r.replicas > 0).map(|r| (r.name, 0)).collect();
        if self.scale_all(&mut old, &targets).await? {
            let all: Vec<ReplicaSet> = old.iter().cloned().chain(new.clone()).collect();
            return self.sync_rollout_status(&all, new.as_ref()).await;
        }
        if let Some(wait) = self.old_pods_wait(&old).await? {
            // Terminating pods no longer count in their ReplicaSet's status, so no change of it
            // says when they are gone: look again, less often the longer they take.
            let all: Vec<ReplicaSet> = old.iter().cloned().chain(new.clone()).collect();
            self.sync_rollout_status(&all, new.as_ref()).await?;
            return Ok(Action::requeue(wait));
        }
        let mut new = match new {
            Some(new) => new,
            None => {
                let (new, rest) = self.new_and_old((None, old), true).await?;
                old = rest;
                let Some(new) = new else { return Ok(Action::requeue(Duration::from_secs(1))) };
                new
            }
        };
        let replicas = self.params().replicas;
        new = self.scale(&new, replicas).await?;
        if status::complete(&self.d, self.d.status.as_ref().unwrap_or(&DeploymentStatus::default())) {
            self.cleanup(&old).await?;
        }
        let all: Vec<ReplicaSet> = old.iter().cloned().chain([new.clone()]).collect();
        self.sync_rollout_status(&all, Some(&new)).await
    }

    /// Whether any pod of an old ReplicaSet may still run: then how long to wait before looking
    /// again, 500 ms doubling (as long again as the pods have been terminating) up to 30 s.
    async fn old_pods_wait(&self, old: &[ReplicaSet]) -> Result<Option<Duration>, ReconcileError> {
        if old.iter().any(|r| r.status.as_ref().is_some_and(|s| s.replicas > 0)) {
            return Ok(Some(RECREATE_WAIT_MIN));
        }
        let selector = self.d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        let mut params = ListParams::default();
        if let Some(query) = selector_query(&selector) {
            params = params.labels(&query);
        }
        let namespace = self.d.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &namespace);
        let old_uids: Vec<&String> = old.iter().filter_map(|r| r.metadata.uid.as_ref()).collect();
        let listed = pods.list(&params).await?.items;
        let running: Vec<&Pod> = listed
            .iter()
            .filter(|pod| controller_of(&pod.metadata).is_some_and(|r| old_uids.contains(&&r.uid)) && !is_terminal(pod))
            .collect();
        Ok((!running.is_empty()).then(|| recreate_wait(&running, Timestamp::now())))
    }
}

/// The shortest and longest wait of a Recreate rollout for its old pods to go.
const RECREATE_WAIT_MIN: Duration = Duration::from_millis(500);
const RECREATE_WAIT_MAX: Duration = Duration::from_secs(30);

/// How long a Recreate rollout waits before looking again for `running` old pods: as long as the
/// longest-terminating of them has been terminating (so the waits double), 500 ms to 30 s.
fn recreate_wait(running: &[&Pod], now: Timestamp) -> Duration {
    let since = running.iter().filter_map(|p| p.metadata.deletion_timestamp.as_ref()).map(|t| t.0).min();
    let elapsed = since.map(|t| Duration::try_from(now.duration_since(t)).unwrap_or_default()).unwrap_or_default();
    elapsed.clamp(RECREATE_WAIT_MIN, RECREATE_WAIT_MAX)
}

pub async fn reconcile(obj: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let namespace = obj.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
    // The freshest copy: the status this controller wrote last may not be in the cache yet.
    let Some(d) = deployments.get_opt(&name).await? else { return Ok(Action::await_change()) };
    let mut sync = Sync { ctx: &ctx, d, name, deployments, sets };
    let selector = sync.d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
    if is_empty_selector(&selector) {
        let message = "This deployment is selecting all pods. A non-empty selector is required.";
        ctx.recorder.record(&sync.d, EventType::Warning, "SelectingAll", message);
        let mut status = sync.d.status.clone().unwrap_or_default();
        status.observed_generation = sync.d.metadata.generation;
        sync.write_status(status).await?;
        return Ok(Action::await_change());
    }
    let sets = sync.claim_replica_sets().await?;
    if sync.d.metadata.deletion_timestamp.is_some() {
        let (new, old) = sync.new_and_old(split_new(&sync.d, sets), false).await?;
        let all: Vec<ReplicaSet> = old.into_iter().chain(new.clone()).collect();
        return sync.sync_status(&all, new.as_ref()).await;
    }
    if let Some(status) = status::paused_status(&sync.d, Timestamp::now()) {
        sync.write_status(status).await?;
    }
    let paused = sync.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let split = split_new(&sync.d, sets);
    let scaling =
        rolling::is_scaling_event(&sync.params(), split.0.as_ref().map(RsState::of).as_ref(), &states(&split.1));
    let recreate =
        sync.d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()) == Some("Recreate");
    if paused || scaling {
        sync.sync(split).await
    } else if recreate {
        sync.recreate(split).await
    } else {
        sync.rolling(split).await
    }
}

fn error_policy(d: Arc<Deployment>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    match error {
        ReconcileError::Collision(_) => Action::requeue(Duration::from_millis(100)),
        ReconcileError::Api(kube::Error::Api(e)) if e.code == 409 => Action::requeue(Duration::from_millis(200)),
        _ => retry_soon(d, error, ctx),
    }
}

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let deployments: Api<Deployment> = Api::all(client.clone());
    let sets: Api<ReplicaSet> = Api::all(client.clone());
    let ctx = Context::new(client.clone(), "deployment-controller");
    let controller = Controller::new(deployments, watcher::Config::default());
    let store = controller.store();
    controller
        .watches(sets, watcher::Config::default(), move |rs| {
            owners_concerned(&store, &rs, |d: &Deployment| d.spec.as_ref().map(|s| &s.selector))
        })
        .with_config(Config::default().debounce(Duration::from_millis(150)))
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(image: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "uid": "d1"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "ticker", "image": image}]}}},
        }))
        .unwrap()
    }

    fn replica_set(name: &str, image: &str, created: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"selector": {"matchLabels": {"app": "web", HASH_LABEL: name}},
                "template": {"metadata": {"labels": {"app": "web", HASH_LABEL: name}},
                    "spec": {"containers": [{"name": "ticker", "image": image}]}}},
        }))
        .unwrap()
    }

    #[test]
    fn the_new_replica_set_is_the_oldest_with_the_current_template() {
        let sets = vec![
            replica_set("b", "ticker:v2", "2026-01-01T00:02:00Z"),
            replica_set("a", "ticker:v1", "2026-01-01T00:01:00Z"),
            replica_set("c", "ticker:v2", "2026-01-01T00:01:30Z"),
        ];
        let (new, old) = split_new(&deployment("ticker:v2"), sets.clone());
        assert_eq!(new.unwrap().metadata.name.as_deref(), Some("c"));
        assert_eq!(old.iter().map(|r| r.metadata.name.clone().unwrap()).collect::<Vec<_>>(), ["a", "b"]);
        let (new, old) = split_new(&deployment("ticker:v3"), sets);
        assert!(new.is_none());
        assert_eq!(old.len(), 3);
        assert!(is_empty_selector(&LabelSelector::default()));
    }

    #[test]
    fn recreate_waits_longer_the_longer_old_pods_terminate() {
        let pod = |deleted: Option<&str>| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p", "deletionTimestamp": deleted}})).unwrap()
        };
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let (fresh, older, ancient) =
            (pod(Some("2026-01-01T00:00:58Z")), pod(Some("2026-01-01T00:00:52Z")), pod(Some("2025-12-31T00:00:00Z")));
        assert_eq!(recreate_wait(&[&pod(None)], now), RECREATE_WAIT_MIN, "not terminating yet");
        assert_eq!(recreate_wait(&[&fresh, &older], now), Duration::from_secs(8), "the longest-terminating counts");
        assert_eq!(recreate_wait(&[&ancient], now), RECREATE_WAIT_MAX, "a pod stuck terminating");
    }

    #[test]
    fn orphan_replica_sets_concern_the_deployments_that_select_them() {
        let mut web = deployment("ticker:v1");
        web.metadata.namespace = Some("default".into());
        let (store, mut writer) = kube::runtime::reflector::store();
        writer.apply_watcher_event(&watcher::Event::Apply(web));
        let interested = |rs: &ReplicaSet| {
            owners_concerned(&store, rs, |d: &Deployment| d.spec.as_ref().map(|s| &s.selector))
                .into_iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
        };
        let mut orphan = replica_set("web-x", "ticker:v1", "2026-01-01T00:00:00Z");
        orphan.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        assert_eq!(interested(&orphan), ["web"]);
        orphan.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
        assert!(interested(&orphan).is_empty());
    }
}
