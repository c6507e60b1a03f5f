//! Crash consistency of the control plane, checked the way etcd's robustness tests check theirs:
//! 8 clients create, update and delete ConfigMaps as fast as the server answers, recording every
//! request with its start, end and outcome; the server is killed with SIGKILL while more than
//! 2,000 creates have been sent, restarted on the same data dir, and the history is checked
//! against what the restarted server lists and replays from a watch:
//!
//! - every acknowledged write is there, with its content and resourceVersion (or superseded by a
//!   later write of the same object);
//! - nothing exists that no client wrote, and no write is half there (content is one write's);
//! - writes whose outcome the client could not know (in flight at the kill) are there or not;
//! - resourceVersions are unique and follow real time: a write acknowledged before another was
//!   sent has the smaller one;
//! - a watch from resourceVersion 1 replays every surviving write in increasing order, with no
//!   acknowledged one missing, and one from 0 starts with exactly the listed objects;
//! - SQLite's `PRAGMA integrity_check` says ok.

mod common;
#[path = "common/history.rs"]
mod history;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Cluster;
use futures::StreamExt;
use history::{Op, OpKind, Outcome, Rng, rev_of};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};

const CLIENTS: usize = 8;
const NAMESPACE: &str = "crash";
/// The server is killed once this many creates have been sent.
const KILL_AFTER_CREATES: usize = 2_400;
/// Bound on the writing phase if the server is slower than expected.
const WRITE_PHASE_LIMIT: Duration = Duration::from_secs(30);
/// The one ConfigMap the control plane itself writes in every namespace (the cluster CA, as
/// Kubernetes publishes it); the check leaves it out.
const ROOT_CA: &str = "kube-root-ca.crt";

/// The content of the write `id`: deterministic, so that any object read back can be matched
/// with the one write that produced it, whole.
fn data_for(id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("op".to_string(), id.to_string()), ("payload".to_string(), format!("{id}:").repeat(16))])
}

/// The `tier` label of the write `id`: writes alternate it by their number, so updates move
/// objects in and out of the `tier=a` selector.
fn tier_of(id: &str) -> &'static str {
    let seq: u64 = id.rsplit("op").next().and_then(|n| n.parse().ok()).unwrap_or(0);
    if seq.is_multiple_of(2) { "a" } else { "b" }
}

fn config_map(name: &str, id: &str, client: usize, rev: Option<i64>) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.metadata.labels = Some(BTreeMap::from([
        ("writer".to_string(), format!("c{client}")),
        ("tier".to_string(), tier_of(id).to_string()),
    ]));
    cm.metadata.resource_version = rev.map(|r| r.to_string());
    cm.data = Some(data_for(id));
    cm
}

/// One client: a sequence of requests on its own objects, one at a time, as fast as answered.
/// After an unknown outcome it never touches that object again, so an object's unknown write is
/// always its last.
async fn client(
    index: usize,
    api: Api<ConfigMap>,
    stop: Arc<AtomicBool>,
    creates: Arc<AtomicUsize>,
    history: Arc<Mutex<Vec<Op>>>,
) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1));
    // Objects known to exist: name → (resourceVersion, op id of their content).
    let mut live: Vec<(String, i64, String)> = Vec::new();
    let mut created = 0;
    for seq in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let id = format!("c{index}-op{seq}");
        let roll = rng.below(10);
        let kind = match roll {
            7 | 8 if !live.is_empty() => OpKind::Update,
            9 if !live.is_empty() => OpKind::Delete,
            _ => OpKind::Create,
        };
        let start = Instant::now();
        let (name, op_id, result) = match kind {
            OpKind::Create => {
                let name = format!("c{index}-{created}");
                created += 1;
                creates.fetch_add(1, Ordering::SeqCst);
                let result = api.create(&PostParams::default(), &config_map(&name, &id, index, None)).await;
                (name, id.clone(), result.map(|cm| rev_of(&cm)))
            }
            OpKind::Update => {
                let (name, rev, _) = live[rng.below(live.len())].clone();
                let result =
                    api.replace(&name, &PostParams::default(), &config_map(&name, &id, index, Some(rev))).await;
                (name, id.clone(), result.map(|cm| rev_of(&cm)))
            }
            OpKind::Delete => {
                let (name, _, content) = live[rng.below(live.len())].clone();
                let result = api.delete(&name, &DeleteParams::default()).await;
                let rev = result
                    .map(|either| rev_of(&either.left().expect("a ConfigMap's delete answers the deleted object")));
                (name, content, rev)
            }
        };
        let end = Instant::now();
        let outcome = match &result {
            Ok(rev) => Outcome::Acked(*rev),
            Err(e) => history::classify(e),
        };
        let position = live.iter().position(|(n, _, _)| *n == name);
        match (&outcome, kind) {
            (Outcome::Acked(rev), OpKind::Create | OpKind::Update) => match position {
                Some(i) => live[i] = (name.clone(), *rev, op_id.clone()),
                None => live.push((name.clone(), *rev, op_id.clone())),
            },
            (Outcome::Acked(_), OpKind::Delete) | (Outcome::Unknown(_), _) => {
                if let Some(i) = position {
                    live.swap_remove(i);
                }
            }
            (Outcome::Failed(_), _) => {}
        }
        let labels = vec![("writer".to_string(), format!("c{index}")), ("tier".to_string(), tier_of(&op_id).into())];
        history.lock().unwrap().push(Op {
            kind,
            namespace: NAMESPACE.into(),
            name,
            id: op_id,
            labels,
            start,
            end,
            outcome,
        });
    }
}

/// A watch event as replayed: type, name, resourceVersion, content id, whole content.
#[derive(Debug, Clone)]
struct Seen {
    kind: &'static str,
    name: String,
    rev: i64,
    id: String,
    data: BTreeMap<String, String>,
    tier: String,
}

fn seen(kind: &'static str, cm: ConfigMap) -> Seen {
    let rev = rev_of(&cm);
    let data = cm.data.unwrap_or_default();
    let tier = cm.metadata.labels.unwrap_or_default().remove("tier").unwrap_or_default();
    Seen {
        tier,
        kind,
        name: cm.metadata.name.unwrap_or_default(),
        rev,
        id: data.get("op").cloned().unwrap_or_default(),
        data,
    }
}

/// Every ConfigMap event of a watch from `rv` (with a label selector, if given) until it is quiet
/// for 2 s.
async fn replay(api: &Api<ConfigMap>, rv: &str, selector: Option<&str>) -> Vec<Seen> {
    let mut params = WatchParams::default().timeout(20);
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let mut stream = api.watch(&params, rv).await.expect("watch starts").boxed();
    let mut events = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(2), stream.next()).await {
        match event.expect("a watch event") {
            WatchEvent::Added(cm) => events.push(seen("ADDED", cm)),
            WatchEvent::Modified(cm) => events.push(seen("MODIFIED", cm)),
            WatchEvent::Deleted(cm) => events.push(seen("DELETED", cm)),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("the watch from resourceVersion {rv} failed: {e:?}"),
        }
    }
    events
}

/// The history check: returns the violations found, and how many unknown writes survived.
fn check(ops: &[Op], listed: &[Seen], replayed: &[Seen], initial: &[Seen]) -> (Vec<String>, usize) {
    let mut errors = Vec::new();
    if let Err(e) = history::check_real_time_order(ops) {
        errors.push(e);
    }
    if let Some(w) = replayed.windows(2).find(|w| w[0].rev >= w[1].rev) {
        errors.push(format!("the watch replayed resourceVersion {} after {}", w[1].rev, w[0].rev));
    }
    let mut by_name: HashMap<&str, Vec<&Op>> = HashMap::new();
    for op in ops {
        by_name.entry(op.name.as_str()).or_default().push(op);
    }
    let mut events_by_name: HashMap<&str, Vec<&Seen>> = HashMap::new();
    for event in replayed {
        events_by_name.entry(event.name.as_str()).or_default().push(event);
        if event.data != data_for(&event.id) {
            errors.push(format!("{} at resourceVersion {} has content no write produced", event.name, event.rev));
        }
    }
    let listed_by_name: HashMap<&str, &Seen> = listed.iter().map(|s| (s.name.as_str(), s)).collect();
    for name in events_by_name.keys().chain(listed_by_name.keys()) {
        if !by_name.contains_key(name) {
            errors.push(format!("{name} exists but no client ever wrote it"));
        }
    }
    let mut unknown_survived = 0;
    for (name, ops) in &by_name {
        // The writes that must have happened, in order, and the one that may have.
        let applied: Vec<&&Op> = ops.iter().filter(|o| matches!(o.outcome, Outcome::Acked(_))).collect();
        let unknown: Vec<&&Op> = ops.iter().filter(|o| matches!(o.outcome, Outcome::Unknown(_))).collect();
        assert!(unknown.len() <= 1, "the client wrote {name} again after an unknown outcome");
        let last: &Op = ops.last().expect("non-empty");
        let maybe: Option<&Op> = unknown.first().map(|u| **u).filter(|u| std::ptr::eq(*u, last));
        let events = events_by_name.get(name).cloned().unwrap_or_default();
        let matches = |event: &Seen, op: &Op| {
            event.kind == op.kind.event_type() && event.id == op.id && op.acked_rev().is_none_or(|rev| rev == event.rev)
        };
        let prefix_ok = events.len() >= applied.len() && events.iter().zip(&applied).all(|(e, o)| matches(e, o));
        let rest = &events[applied.len().min(events.len())..];
        let tail_ok = match (rest, maybe) {
            ([], _) => true,
            ([one], Some(op)) if matches(one, op) => {
                unknown_survived += 1;
                true
            }
            _ => false,
        };
        if !prefix_ok || !tail_ok {
            let want: Vec<String> = applied
                .iter()
                .map(|o| format!("{} {} @{}", o.kind.event_type(), o.id, o.acked_rev().unwrap_or_default()))
                .collect();
            let got: Vec<String> = events.iter().map(|e| format!("{} {} @{}", e.kind, e.id, e.rev)).collect();
            errors.push(format!(
                "{name}: acknowledged {want:?} (then maybe {:?}), replayed {got:?}",
                maybe.map(|o| &o.id)
            ));
            continue;
        }
        // What a list shows is where the replay ends.
        let last = events.last().filter(|e| e.kind != "DELETED");
        match (last, listed_by_name.get(name)) {
            (None, None) => {}
            (Some(e), Some(l)) if e.rev == l.rev && e.id == l.id && l.data == data_for(&l.id) => {}
            (want, got) => errors.push(format!(
                "{name}: the replay ends at {:?} but the list has {:?}",
                want.map(|e| (&e.id, e.rev)),
                got.map(|l| (&l.id, l.rev))
            )),
        }
    }
    let mut from_zero: Vec<(&str, i64)> = initial.iter().map(|s| (s.name.as_str(), s.rev)).collect();
    let mut from_list: Vec<(&str, i64)> = listed.iter().map(|s| (s.name.as_str(), s.rev)).collect();
    from_zero.sort_unstable();
    from_list.sort_unstable();
    if from_zero != from_list || initial.iter().any(|s| s.kind != "ADDED") {
        errors.push(format!(
            "a watch from resourceVersion 0 began with {} objects, the list has {}",
            from_zero.len(),
            from_list.len()
        ));
    }
    (errors, unknown_survived)
}

/// A watch with the selector `tier=a` replays what the whole replay (checked against the
/// history) implies under Kubernetes' rules: an object entering the selector is ADDED, one
/// leaving it DELETED, changes outside it not at all.
fn check_selected(replayed: &[Seen], selected: &[Seen]) -> Option<String> {
    let mut tier: HashMap<&str, &str> = HashMap::new();
    let mut want = Vec::new();
    for event in replayed {
        let before = tier.get(event.name.as_str()).map(|t| *t == "a");
        let now = event.tier == "a";
        let kind = match (event.kind, before, now) {
            ("ADDED", _, true) => Some("ADDED"),
            ("MODIFIED", Some(true), true) => Some("MODIFIED"),
            ("MODIFIED", Some(false), true) => Some("ADDED"),
            ("MODIFIED", Some(true), false) => Some("DELETED"),
            ("DELETED", _, true) => Some("DELETED"),
            _ => None,
        };
        if event.kind == "DELETED" {
            tier.remove(event.name.as_str());
        } else {
            tier.insert(&event.name, &event.tier);
        }
        if let Some(kind) = kind {
            want.push((kind, event.name.as_str(), event.rev));
        }
    }
    let got: Vec<(&str, &str, i64)> = selected.iter().map(|e| (e.kind, e.name.as_str(), e.rev)).collect();
    let first = want.iter().zip(&got).position(|(w, g)| w != g);
    match first {
        Some(i) => Some(format!("event {i}: expected {:?}, got {:?}", want[i], got[i])),
        None if want.len() != got.len() => Some(format!("{} events, expected {}", got.len(), want.len())),
        None => None,
    }
}

/// `PRAGMA integrity_check` of the server's database, opened read-only beside the running server.
fn integrity_check(cluster: &Cluster) -> String {
    let path = cluster.data_dir().join("wharf.db");
    let db = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("the database opens read-only");
    let mut stmt = db.prepare("PRAGMA integrity_check").expect("integrity_check prepares");
    let rows: Vec<String> =
        stmt.query_map([], |row| row.get(0)).expect("integrity_check runs").map(|r| r.expect("a row")).collect();
    rows.join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_in_real_time_order() {
    let test_start = Instant::now();
    let mut cluster = Cluster::start_with(&["--no-agent"]);
    cluster.ok(&["create", "namespace", NAMESPACE]);

    let stop = Arc::new(AtomicBool::new(false));
    let creates = Arc::new(AtomicUsize::new(0));
    let history: Arc<Mutex<Vec<Op>>> = Arc::default();
    let mut clients = Vec::new();
    for index in 0..CLIENTS {
        // A client (connection pool) per writer, as 8 separate programs would have.
        let api: Api<ConfigMap> = Api::namespaced(cluster.client().await, NAMESPACE);
        clients.push(tokio::spawn(client(index, api, stop.clone(), creates.clone(), history.clone())));
    }
    let writing = Instant::now();
    while creates.load(Ordering::SeqCst) < KILL_AFTER_CREATES && writing.elapsed() < WRITE_PHASE_LIMIT {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let creates_sent = creates.load(Ordering::SeqCst);
    let killed_at = Instant::now();
    cluster.kill();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.expect("a client finishes");
    }
    let write_phase = killed_at - writing;
    assert!(
        creates_sent >= KILL_AFTER_CREATES,
        "only {creates_sent} creates were sent in {write_phase:?}; the server is too slow for this test"
    );

    let restarting = Instant::now();
    cluster.restart();
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().await, NAMESPACE);
    let list = loop {
        match api.list(&ListParams::default()).await {
            Ok(list) => break list,
            Err(e) => {
                assert!(restarting.elapsed() < Duration::from_secs(30), "the restarted server never listed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let restart_time = restarting.elapsed();

    let ops = std::mem::take(&mut *history.lock().unwrap());
    let ours = |s: &Seen| s.name != ROOT_CA;
    let listed: Vec<Seen> = list.items.into_iter().map(|cm| seen("LISTED", cm)).filter(ours).collect();
    let replayed: Vec<Seen> = replay(&api, "1", None).await.into_iter().filter(ours).collect();
    let initial: Vec<Seen> = replay(&api, "0", None).await.into_iter().filter(ours).collect();
    let selected: Vec<Seen> = replay(&api, "1", Some("tier=a")).await.into_iter().filter(ours).collect();
    let (mut errors, unknown_survived) = check(&ops, &listed, &replayed, &initial);
    if let Some(problem) = check_selected(&replayed, &selected) {
        errors.push(format!("the watch of tier=a from resourceVersion 1: {problem}"));
    }

    // The revision counter goes on above everything that was acknowledged or replayed.
    let highest = ops.iter().filter_map(Op::acked_rev).chain(replayed.iter().map(|s| s.rev)).max().unwrap_or(0);
    let after = api
        .create(&PostParams::default(), &config_map("after-restart", "after", 0, None))
        .await
        .expect("a create after the restart");
    let integrity = integrity_check(&cluster);

    let count =
        |kind: OpKind, want: fn(&Outcome) -> bool| ops.iter().filter(|o| o.kind == kind && want(&o.outcome)).count();
    let acked = |o: &Outcome| matches!(o, Outcome::Acked(_));
    let unknown = |o: &Outcome| matches!(o, Outcome::Unknown(_));
    let failed = |o: &Outcome| matches!(o, Outcome::Failed(_));
    let in_flight = ops.iter().filter(|o| o.start <= killed_at && (o.end >= killed_at || unknown(&o.outcome))).count();
    let acked_total = ops.iter().filter(|o| acked(&o.outcome)).count();
    let unknown_total = ops.iter().filter(|o| unknown(&o.outcome)).count();
    println!("crash: {CLIENTS} clients, SIGKILL after {creates_sent} creates sent in {write_phase:.2?}");
    println!(
        "crash: writes acknowledged {acked_total} (creates {}, updates {}, deletes {}), {:.0} writes/s",
        count(OpKind::Create, acked),
        count(OpKind::Update, acked),
        count(OpKind::Delete, acked),
        acked_total as f64 / write_phase.as_secs_f64()
    );
    println!(
        "crash: in flight at the kill {in_flight}, outcome unknown {unknown_total} (of which present after restart \
         {unknown_survived}), definite failures {}",
        ops.iter().filter(|o| failed(&o.outcome)).count()
    );
    println!(
        "crash: recovered {} objects, {} events replayed from resourceVersion 1; restart to first list {restart_time:.2?}",
        listed.len(),
        replayed.len()
    );
    println!(
        "crash: history check {}; integrity_check {integrity}; test wall time {:.1?}",
        if errors.is_empty() { "ok".to_string() } else { format!("{} violations", errors.len()) },
        test_start.elapsed()
    );
    assert!(
        errors.is_empty(),
        "history violations:\n{}",
        errors.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(rev_of(&after) > highest, "a write after the restart got resourceVersion {} ≤ {highest}", rev_of(&after));
    assert_eq!(integrity, "ok", "PRAGMA integrity_check");
}
