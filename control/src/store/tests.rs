//! The store's one suite. Every test of a single store runs on SQLite and on Postgres
//! (`<test>::sqlite`, `<test>::postgres`); tests of several servers on one database (two
//! `Store`s on one Postgres) and of the shared files run on Postgres only. Postgres tests need
//! `WHARF_TEST_DATABASE_URL` (a role that may create databases): each creates its own database
//! and drops it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

/// Runs each `async fn(Backend)` as two tests, `<name>::sqlite` and `<name>::postgres`.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$test(super::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$test(super::Backend::Postgres).await
            }
        }
    )*};
}

on_both_backends!(
    writes_are_guarded_by_revision,
    concurrent_writes_get_distinct_increasing_revisions,
    state_and_revisions_survive_reopen,
    list_pages_with_limit_and_continue,
    watch_resumes_from_a_revision_and_expires_after_compaction,
    events_replayed_after_reopen_carry_the_previous_state,
    revisions_strictly_increase_and_every_watcher_sees_every_event_once_in_order,
    fenced_writes_commit_only_while_the_holder_holds_the_lease,
    files_are_shared_only_through_a_shared_datastore,
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// One test's datastore: a SQLite file in a temporary directory, or a fresh Postgres database.
/// Each [`Fixture::open`] on Postgres is one more server on the same database.
struct Fixture {
    datastore: Datastore,
    opened: std::sync::Mutex<Vec<Store>>,
    _db: Option<TestDb>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (datastore, db) = match backend {
            Backend::Sqlite => (Datastore::Sqlite(dir.path().join("wharf.db")), None),
            Backend::Postgres => {
                let db = TestDb::create().await;
                (Datastore::Postgres(db.url.clone()), Some(db))
            }
        };
        Self { datastore, opened: Default::default(), _db: db, _dir: dir }
    }

    /// Opens a store on the datastore (a server starting, or restarting after [`Fixture::close`]).
    async fn open(&self, window: usize) -> Store {
        let options = StoreOptions { window, synchronous_full: true };
        let store = Store::connect(&self.datastore, options)
            .await
            .unwrap_or_else(|e| panic!("cannot open the store on {}: {e}", self.datastore));
        self.opened.lock().unwrap().push(store.clone());
        store
    }

    /// Stops a store as a server that shuts down: its connections close, its handles go.
    async fn close(&self, store: Store) {
        store.close().await;
        self.opened.lock().unwrap().retain(|s| !Arc::ptr_eq(&s.inner, &store.inner));
    }

    /// Closes every store still open; the database goes with the fixture.
    async fn finish(self) {
        let opened = std::mem::take(&mut *self.opened.lock().unwrap());
        for store in opened {
            store.close().await;
        }
    }
}

fn cm(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"k": value}})
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("configmaps", "default", name)
}

async fn create(store: &Store, name: &str, value: &str) -> Arc<Stored> {
    store.write(Write::Create { key: key(name), object: cm(name, value) }).await.unwrap()
}

/// How long a test waits for something another server should see soon (a missing event or a
/// write never seen fails the test instead of hanging it).
const PATIENCE: Duration = Duration::from_secs(10);

/// The watch's next event.
async fn next_event(watch: &mut WatchSource) -> Event {
    let after = watch.revision();
    match tokio::time::timeout(PATIENCE, watch.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("the watch failed after revision {after}: {e}"),
        Ok(None) => panic!("the store closed during a watch"),
        Err(_) => panic!("no event after revision {after} within {PATIENCE:?}"),
    }
}

/// Waits until `check` holds; prints how long that took.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < PATIENCE, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("{what}: after {:?}", started.elapsed());
}

/// (revision, name, data) of every configmap a store lists.
fn listed(store: &Store) -> Vec<(i64, String, Value)> {
    let page = store.list("configmaps", Some("default"), None, 0, |_| true);
    page.items.iter().map(|s| (s.rev, s.key.name.clone(), s.object["data"]["k"].clone())).collect()
}

async fn writes_are_guarded_by_revision(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.open(100).await;
    let a = create(&store, "a", "1").await;
    assert_eq!(a.object["metadata"]["resourceVersion"], json!(a.rev.to_string()));
    let again = store.write(Write::Create { key: key("a"), object: cm("a", "1") }).await;
    assert_eq!(again.unwrap_err(), WriteError::AlreadyExists);

    let b =
        store.write(Write::Update { key: key("a"), object: cm("a", "2"), expected_rev: Some(a.rev) }).await.unwrap();
    assert!(b.rev > a.rev);
    let stale = store.write(Write::Update { key: key("a"), object: cm("a", "3"), expected_rev: Some(a.rev) }).await;
    assert_eq!(stale.unwrap_err(), WriteError::Conflict);
    assert_eq!(store.get(&key("a")).unwrap().object["data"]["k"], "2");

    let missing = store.write(Write::Delete { key: key("zz"), expected_rev: None }).await;
    assert_eq!(missing.unwrap_err(), WriteError::NotFound);
    let absent = store.write(Write::Update { key: key("zz"), object: cm("zz", "1"), expected_rev: None }).await;
    assert_eq!(absent.unwrap_err(), WriteError::NotFound);
    store.write(Write::Delete { key: key("a"), expected_rev: Some(b.rev) }).await.unwrap();
    assert!(store.get(&key("a")).is_none());
    fx.finish().await;
}

async fn concurrent_writes_get_distinct_increasing_revisions(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.open(1000).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { create(&store, &format!("cm-{i}"), "x").await.rev }));
    }
    let mut revs = Vec::new();
    for t in tasks {
        revs.push(t.await.unwrap());
    }
    revs.sort();
    revs.dedup();
    assert_eq!(revs.len(), 200);
    assert_eq!(*revs.last().unwrap(), store.revision());
    fx.finish().await;
}

async fn state_and_revisions_survive_reopen(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.open(100).await;
    for i in 0..5 {
        create(&store, &format!("c{i}"), "v").await;
    }
    store.write(Write::Update { key: key("c1"), object: cm("c1", "changed"), expected_rev: None }).await.unwrap();
    let last = store.write(Write::Delete { key: key("c0"), expected_rev: None }).await.unwrap().rev;
    let before = listed(&store);
    fx.close(store).await;

    let store = fx.open(100).await;
    assert_eq!(store.revision(), last);
    assert!(store.get(&key("c0")).is_none());
    assert_eq!(listed(&store), before);
    assert_eq!(before.len(), 4);
    assert_eq!(store.get(&key("c1")).unwrap().object["data"]["k"], "changed");
    let next = create(&store, "c9", "v").await;
    assert_eq!(next.rev, last + 1);
    if let Datastore::Sqlite(path) = &fx.datastore {
        assert_eq!(sqlite::Database::integrity_check_of(path), "ok");
    }
    fx.finish().await;
}

async fn list_pages_with_limit_and_continue(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.open(100).await;
    for i in 0..7 {
        create(&store, &format!("c{i}"), "v").await;
    }
    let first = store.list("configmaps", Some("default"), None, 3, |_| true);
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.remaining, 4);
    assert_eq!(first.rev, store.revision());
    let second = store.list("configmaps", Some("default"), first.next.clone(), 3, |_| true);
    assert_eq!(second.items[0].key.name, "c3");
    let third = store.list("configmaps", Some("default"), second.next.clone(), 3, |_| true);
    assert_eq!(third.items.len(), 1);
    assert!(third.next.is_none());
    assert!(store.list("configmaps", Some("other"), None, 0, |_| true).items.is_empty());
    fx.finish().await;
}

async fn watch_resumes_from_a_revision_and_expires_after_compaction(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.open(5).await;
    let start = store.revision();
    let mut revs = Vec::new();
    for i in 0..3 {
        revs.push(create(&store, &format!("w{i}"), "v").await.rev);
    }
    let mut watch = store.watch(WatchStart::After(revs[0])).unwrap();
    let e = next_event(&mut watch).await;
    assert_eq!((e.kind, e.rev()), (EventType::Added, revs[1]));
    assert_eq!(next_event(&mut watch).await.rev(), revs[2]);
    store.write(Write::Delete { key: key("w0"), expected_rev: None }).await.unwrap();
    let deleted = next_event(&mut watch).await;
    assert_eq!(deleted.kind, EventType::Deleted);
    assert_eq!(deleted.object.key.name, "w0");
    drop(watch);

    for i in 0..10 {
        create(&store, &format!("x{i}"), "v").await;
    }
    let gone = store.watch(WatchStart::After(start)).err().unwrap();
    assert!(matches!(gone, Error::Gone(_)), "{gone:?}");
    assert_eq!(gone.code().as_u16(), 410);
    // A recent revision still resumes.
    let recent = store.revision() - 2;
    let mut watch = store.watch(WatchStart::After(recent)).unwrap();
    assert_eq!(next_event(&mut watch).await.rev(), recent + 1);
    fx.finish().await;
}

async fn events_replayed_after_reopen_carry_the_previous_state(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.open(100).await;
    let a = create(&store, "p", "1").await;
    let b = store.write(Write::Update { key: key("p"), object: cm("p", "2"), expected_rev: None }).await.unwrap();
    store.write(Write::Delete { key: key("p"), expected_rev: None }).await.unwrap();
    let (created, updated) = (a.rev, b.rev);
    fx.close(store).await;

    let store = fx.open(100).await;
    let mut watch = store.watch(WatchStart::After(created - 1)).unwrap();
    let added = next_event(&mut watch).await;
    assert!(added.previous.is_none());
    let modified = next_event(&mut watch).await;
    assert_eq!(modified.kind, EventType::Modified);
    assert_eq!(modified.previous.as_ref().unwrap().object["data"]["k"], "1");
    let deleted = next_event(&mut watch).await;
    assert_eq!(deleted.kind, EventType::Deleted);
    assert_eq!(deleted.previous.as_ref().unwrap().rev, updated);
    drop(watch);
    fx.finish().await;
}

/// What a watcher must see for each revision: the change and the object's name.
type History = BTreeMap<i64, (EventType, String)>;

/// Creates, updates and deletes `per_task` objects from each of `tasks` concurrent writers
/// spread over `stores`, each object's three writes guarded by the revision before; returns
/// every acknowledged change by revision.
async fn churn(stores: &[Store], tasks: usize, per_task: usize, prefix: &str) -> History {
    let mut running = Vec::new();
    for t in 0..tasks {
        let store = stores[t % stores.len()].clone();
        let prefix = prefix.to_string();
        running.push(tokio::spawn(async move {
            let mut done = Vec::new();
            for i in 0..per_task {
                let name = format!("{prefix}-{t}-{i}");
                let created = create(&store, &name, "0").await;
                let updated = store
                    .write(Write::Update { key: key(&name), object: cm(&name, "1"), expected_rev: Some(created.rev) })
                    .await
                    .unwrap();
                let deleted =
                    store.write(Write::Delete { key: key(&name), expected_rev: Some(updated.rev) }).await.unwrap();
                for (stored, kind) in
                    [(created, EventType::Added), (updated, EventType::Modified), (deleted, EventType::Deleted)]
                {
                    done.push((stored.rev, kind, name.clone()));
                }
            }
            done
        }));
    }
    let mut history = History::new();
    for task in running {
        for (rev, kind, name) in task.await.unwrap() {
            assert!(history.insert(rev, (kind, name)).is_none(), "revision {rev} acknowledged twice");
        }
    }
    assert_eq!(history.len(), tasks * per_task * 3, "every write got its own revision");
    history
}

/// Reads `history.len()` events from `watch` and checks they are exactly `history`, in order,
/// each update and deletion carrying the state it replaced; then that nothing more is pending.
async fn sees_exactly(who: &str, watch: &mut WatchSource, history: &History) {
    let mut last = watch.revision();
    let mut previous_of: HashMap<String, i64> = HashMap::new();
    for (&rev, (kind, name)) in history {
        let event = next_event(watch).await;
        assert!(event.rev() > last, "{who}: revision {} after {last}", event.rev());
        assert_eq!((event.rev(), event.kind, &event.object.key.name), (rev, *kind, name), "{who}: event out of order");
        match event.kind {
            EventType::Added => assert!(event.previous.is_none(), "{who}: {name} added with a previous state"),
            _ => assert_eq!(
                event.previous.as_ref().map(|p| p.rev),
                previous_of.get(name).copied(),
                "{who}: {name}'s previous state at {rev}"
            ),
        }
        previous_of.insert(name.clone(), rev);
        last = rev;
    }
    assert!(watch.try_next().is_none(), "{who}: an event beyond the history (a duplicate?)");
}

async fn revisions_strictly_increase_and_every_watcher_sees_every_event_once_in_order(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.open(10_000).await;
    for i in 0..10 {
        create(&store, &format!("before-{i}"), "v").await;
    }
    let start = store.revision();
    let mut from_now = store.watch(WatchStart::Now).unwrap();
    let mut from_start = store.watch(WatchStart::After(start)).unwrap();
    let history = churn(std::slice::from_ref(&store), 8, 10, "churn").await;
    assert!(*history.keys().next().unwrap() > start);
    assert_eq!(*history.keys().last().unwrap(), store.revision());
    // A watch begun after the writes replays them from the window.
    let mut late = store.watch(WatchStart::After(start)).unwrap();
    sees_exactly("watch from now", &mut from_now, &history).await;
    sees_exactly("watch from the start revision", &mut from_start, &history).await;
    sees_exactly("watch begun after the writes", &mut late, &history).await;
    drop((from_now, from_start, late));
    fx.finish().await;
}

/// The controller-manager Lease, whose holder fences the controllers' writes.
fn lease_key() -> ObjectKey {
    let leases = crate::registry::kinds::lookup("coordination.k8s.io", "v1", "leases").unwrap();
    ObjectKey::new(leases.storage_key(), "kube-system", "wharf-controller-manager")
}

fn lease(holder: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "wharf-controller-manager", "namespace": "kube-system"},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 10}})
}

async fn fenced(store: &Store, holder: &str, write: Write) -> Result<Arc<Stored>, WriteError> {
    FENCE.scope(Fence { lease: lease_key(), holder: holder.into() }, store.write(write)).await
}

/// Asserts a refusal for fencing; its message names the holder when there is one.
fn assert_fenced(outcome: Result<Arc<Stored>, WriteError>, holder: Option<&str>) {
    match outcome {
        Err(WriteError::Fenced(message)) => {
            if let Some(holder) = holder {
                assert!(message.contains(holder), "the refusal should name the holder {holder}: {message}");
            }
        }
        other => panic!("expected WriteError::Fenced, got {other:?}"),
    }
}

async fn takeover(store: &Store, holder: &str) -> Arc<Stored> {
    store.write(Write::Update { key: lease_key(), object: lease(holder), expected_rev: None }).await.unwrap()
}

async fn fenced_writes_commit_only_while_the_holder_holds_the_lease(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.open(100).await;
    let start = store.revision();
    let (a, b) = ("server-a_0000000a", "server-b_0000000b");
    // Nobody holds the lease yet: no fenced write commits.
    assert_fenced(fenced(&store, a, Write::Create { key: key("x"), object: cm("x", "0") }).await, None);

    store.write(Write::Create { key: lease_key(), object: lease(a) }).await.unwrap();
    let x = fenced(&store, a, Write::Create { key: key("x"), object: cm("x", "1") }).await.unwrap();
    let x = fenced(&store, a, Write::Update { key: key("x"), object: cm("x", "2"), expected_rev: Some(x.rev) })
        .await
        .unwrap();
    assert_fenced(fenced(&store, b, Write::Create { key: key("y"), object: cm("y", "1") }).await, Some(a));

    // Another server takes the lease: the deposed holder can neither create, update nor delete.
    let taken = takeover(&store, b).await;
    assert_fenced(
        fenced(&store, a, Write::Update { key: key("x"), object: cm("x", "3"), expected_rev: Some(x.rev) }).await,
        Some(b),
    );
    assert_fenced(fenced(&store, a, Write::Delete { key: key("x"), expected_rev: None }).await, Some(b));
    assert_fenced(fenced(&store, a, Write::Create { key: key("z"), object: cm("z", "1") }).await, Some(b));
    assert_eq!(store.get(&key("x")).unwrap().rev, x.rev, "a refused write changed nothing");
    assert!(store.get(&key("z")).is_none());
    let by_b = fenced(&store, b, Write::Update { key: key("x"), object: cm("x", "4"), expected_rev: Some(x.rev) })
        .await
        .unwrap();

    // Without a lease nobody's fenced writes commit; unfenced writes never depend on it.
    store.write(Write::Delete { key: lease_key(), expected_rev: None }).await.unwrap();
    assert_fenced(fenced(&store, b, Write::Delete { key: key("x"), expected_rev: None }).await, None);
    let unfenced = store.write(Write::Delete { key: key("x"), expected_rev: None }).await.unwrap();

    // Refused writes made no events.
    let mut watch = store.watch(WatchStart::After(start)).unwrap();
    let mut seen = Vec::new();
    while seen.last() != Some(&unfenced.rev) {
        seen.push(next_event(&mut watch).await.rev());
    }
    assert_eq!(seen.len(), 7, "lease, x, x, takeover, x by b, lease deletion, x deletion: {seen:?}");
    assert!(seen.contains(&taken.rev) && seen.contains(&by_b.rev));
    drop(watch);
    fx.finish().await;
}

/// Within one batch a fence sees the lease as the batch's earlier writes leave it: a takeover
/// queued just before the deposed holder's write refuses that write, though the stored lease
/// still names the old holder.
#[test]
fn a_takeover_earlier_in_the_batch_fences_the_deposed_holders_write() {
    let mut state = State::default();
    let held = Arc::new(Stored::new(lease_key(), 1, lease("a")));
    state.apply(&Event { kind: EventType::Added, object: held, previous: None });
    let queued = |write: Write, holder: Option<&str>| Queued {
        write,
        fence: holder.map(|h| Fence { lease: lease_key(), holder: h.into() }),
        reply: oneshot::channel().0,
    };
    let takeover = || Write::Update { key: lease_key(), object: lease("b"), expected_rev: None };
    let by_a = || Write::Create { key: key("x"), object: cm("x", "1") };

    let (outcomes, last) = decide_batch(&state, vec![queued(takeover(), None), queued(by_a(), Some("a"))], 1);
    assert_eq!(last, 2, "only the takeover takes a revision");
    assert_eq!(outcomes[0].1.as_ref().map(|e| e.rev()), Ok(2));
    match &outcomes[1].1 {
        Err(WriteError::Fenced(message)) => assert!(message.contains("held by b"), "{message}"),
        other => panic!("the deposed holder's write after the takeover: {other:?}"),
    }

    // In the other order the write comes before the takeover and commits.
    let (outcomes, last) = decide_batch(&state, vec![queued(by_a(), Some("a")), queued(takeover(), None)], 1);
    assert_eq!(last, 3);
    let revs: Vec<_> = outcomes.iter().map(|(_, o)| o.as_ref().map(|e| e.rev()).unwrap()).collect();
    assert_eq!(revs, [2, 3]);
}

async fn files_are_shared_only_through_a_shared_datastore(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let one = fx.open(100).await;
    match backend {
        Backend::Sqlite => assert!(one.shared_files().is_none(), "SQLite's one server keeps its files on disk"),
        Backend::Postgres => {
            let other = fx.open(100).await;
            let (mine, theirs) = (one.shared_files().unwrap(), other.shared_files().unwrap());
            mine.put("pki/ca.crt", b"the CA").await.unwrap();
            assert_eq!(theirs.get("pki/ca.crt").await.unwrap().as_deref(), Some(&b"the CA"[..]));
            assert_eq!(theirs.put_if_absent("pki/ca.crt", b"another CA").await.unwrap(), b"the CA");
            assert_eq!(theirs.list("pki/").await.unwrap(), ["pki/ca.crt"]);
        }
    }
    fx.finish().await;
}

/// Several servers (`Store`s) on one Postgres database.
mod two_servers {
    use super::*;

    async fn two(window: usize) -> (Fixture, Store, Store) {
        let fx = Fixture::new(Backend::Postgres).await;
        let (a, b) = (fx.open(window).await, fx.open(window).await);
        (fx, a, b)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_through_one_is_seen_through_the_other_in_get_list_and_watch() {
        let (fx, a, b) = two(1000).await;
        let mut watch_b = b.watch(WatchStart::Now).unwrap();

        let x = create(&a, "x", "1").await;
        let added = next_event(&mut watch_b).await;
        assert_eq!((added.kind, added.rev(), &added.object.key), (EventType::Added, x.rev, &key("x")));
        assert_eq!(added.object.object["data"]["k"], "1");
        assert!(added.previous.is_none());
        // Memory is updated before watchers hear of a change.
        assert_eq!(b.get(&key("x")).unwrap().rev, x.rev);
        assert_eq!(listed(&b), [(x.rev, "x".to_string(), json!("1"))]);
        assert!(b.revision() >= x.rev);

        let y =
            a.write(Write::Update { key: key("x"), object: cm("x", "2"), expected_rev: Some(x.rev) }).await.unwrap();
        let modified = next_event(&mut watch_b).await;
        assert_eq!((modified.kind, modified.rev()), (EventType::Modified, y.rev));
        let previous = modified.previous.as_ref().expect("an update carries the state it replaced");
        assert_eq!((previous.rev, &previous.object["data"]["k"]), (x.rev, &json!("1")));
        assert_eq!(b.get(&key("x")).unwrap().object["data"]["k"], "2");

        let z = a.write(Write::Delete { key: key("x"), expected_rev: Some(y.rev) }).await.unwrap();
        let deleted = next_event(&mut watch_b).await;
        assert_eq!((deleted.kind, deleted.rev()), (EventType::Deleted, z.rev));
        assert_eq!(deleted.previous.as_ref().unwrap().rev, y.rev);
        assert!(b.get(&key("x")).is_none());
        assert!(listed(&b).is_empty());

        // And the other way round, to a watch that resumes from a revision on A.
        let mut watch_a = a.watch(WatchStart::After(x.rev - 1)).unwrap();
        let w = create(&b, "w", "1").await;
        let replayed: Vec<_> = [
            next_event(&mut watch_a).await,
            next_event(&mut watch_a).await,
            next_event(&mut watch_a).await,
            next_event(&mut watch_a).await,
        ]
        .iter()
        .map(|e| (e.rev(), e.kind))
        .collect();
        assert_eq!(
            replayed,
            [
                (x.rev, EventType::Added),
                (y.rev, EventType::Modified),
                (z.rev, EventType::Deleted),
                (w.rev, EventType::Added)
            ]
        );
        assert_eq!(a.get(&key("w")).unwrap().rev, w.rev);
        drop((watch_a, watch_b));
        fx.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compare_and_swap_across_two_servers_lets_exactly_one_win() {
        let (fx, a, b) = two(1000).await;
        let mut rev = create(&a, "x", "start").await.rev;
        let mut wins = [0; 2];
        for round in 0..30 {
            let update = |store: &Store, side: &str| {
                let store = store.clone();
                let object = cm("x", &format!("{side}{round}"));
                tokio::spawn(async move {
                    store.write(Write::Update { key: key("x"), object, expected_rev: Some(rev) }).await
                })
            };
            let (from_a, from_b) = (update(&a, "a"), update(&b, "b"));
            let outcomes = [from_a.await.unwrap(), from_b.await.unwrap()];
            let winners: Vec<usize> = (0..2).filter(|&i| outcomes[i].is_ok()).collect();
            assert_eq!(
                winners.len(),
                1,
                "round {round}: exactly one of two updates from revision {rev} wins: {outcomes:?}"
            );
            let winner = winners[0];
            assert_eq!(outcomes[1 - winner].as_ref().unwrap_err(), &WriteError::Conflict, "round {round}");
            wins[winner] += 1;
            rev = outcomes[winner].as_ref().unwrap().rev;
        }
        println!("wins: server a {}, server b {}", wins[0], wins[1]);

        // Read-modify-write loops on both servers (as controllers do, retrying on conflict)
        // lose no increment.
        let counter = create(&a, "counter", "0").await;
        eventually("server b sees the counter", || b.get(&key("counter")).is_some_and(|c| c.rev == counter.rev)).await;
        let increments = |store: &Store| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..20 {
                    loop {
                        let current = store.get(&key("counter")).unwrap();
                        let n: u32 = current.object["data"]["k"].as_str().unwrap().parse().unwrap();
                        let write = Write::Update {
                            key: key("counter"),
                            object: cm("counter", &(n + 1).to_string()),
                            expected_rev: Some(current.rev),
                        };
                        match store.write(write).await {
                            Ok(_) => break,
                            Err(WriteError::Conflict) => conflicts += 1,
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                }
                conflicts
            })
        };
        let (on_a, on_b) = (increments(&a), increments(&b));
        println!("increment conflicts: server a {}, server b {}", on_a.await.unwrap(), on_b.await.unwrap());
        let final_rev = a.get(&key("counter")).unwrap().rev.max(b.get(&key("counter")).unwrap().rev);
        eventually("both servers at the last increment", || {
            a.get(&key("counter")).unwrap().rev == final_rev && b.get(&key("counter")).unwrap().rev == final_rev
        })
        .await;
        assert_eq!(a.get(&key("counter")).unwrap().object["data"]["k"], "40");
        assert_eq!(b.get(&key("counter")).unwrap().object["data"]["k"], "40");
        fx.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_on_two_servers_form_one_order_every_watch_sees_whole() {
        let (fx, a, b) = two(10_000).await;
        let start = a.revision();
        let mut on_a = a.watch(WatchStart::After(start)).unwrap();
        let mut on_b = b.watch(WatchStart::After(start)).unwrap();
        let history = churn(&[a.clone(), b.clone()], 8, 8, "both").await;
        println!(
            "{} writes from two servers, revisions {:?}",
            history.len(),
            history.keys().next()..history.keys().last()
        );
        // A third server started afterwards replays the same history.
        let c = fx.open(10_000).await;
        let mut on_c = c.watch(WatchStart::After(start)).unwrap();
        sees_exactly("server a", &mut on_a, &history).await;
        sees_exactly("server b", &mut on_b, &history).await;
        sees_exactly("server c", &mut on_c, &history).await;
        let last = *history.keys().last().unwrap();
        eventually("all servers at the last revision", || a.revision() == last && b.revision() == last).await;
        assert_eq!(c.revision(), last);
        drop((on_a, on_b, on_c));
        fx.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watch_from_a_compacted_revision_is_gone_on_every_server() {
        let (fx, a, b) = two(10).await;
        let start = a.revision();
        for i in 0..60 {
            create(&a, &format!("c{i}"), "v").await;
        }
        let last = a.revision();
        eventually("server b caught up", || b.revision() == last).await;
        let late = fx.open(10).await;
        assert_eq!(listed(&late).len(), 60);
        for (who, store) in [("a", &a), ("b", &b), ("a server started later", &late)] {
            let gone = store
                .watch(WatchStart::After(start))
                .err()
                .unwrap_or_else(|| panic!("{who}: watch from {start} began"));
            assert!(matches!(gone, Error::Gone(_)), "{who}: {gone:?}");
            assert_eq!(gone.code().as_u16(), 410);
        }
        // A recent revision resumes, on every server alike.
        for (who, store) in [("a", &a), ("b", &b), ("a server started later", &late)] {
            let mut recent = store
                .watch(WatchStart::After(last - 2))
                .unwrap_or_else(|e| panic!("{who}: a watch from {} (still in the log): {e}", last - 2));
            assert_eq!(next_event(&mut recent).await.rev(), last - 1, "{who}");
            assert_eq!(next_event(&mut recent).await.rev(), last, "{who}");
        }
        let mut on_b = b.watch(WatchStart::After(b.revision())).unwrap();
        let next = create(&a, "next", "v").await;
        assert_eq!(next_event(&mut on_b).await.rev(), next.rev);
        drop(on_b);
        // The shared log itself stays near the window (compaction deletes rows, not just marks).
        let pool = &a.inner.postgres.as_ref().unwrap().pool;
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM wharf_log").fetch_one(pool).await.unwrap();
        println!("log rows after 61 writes with a window of 10: {rows}");
        assert!((10..=20).contains(&rows), "{rows} rows in wharf_log with a window of 10");
        fx.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_fell_behind_resumes_watches_from_revisions_the_log_keeps() {
        use std::sync::atomic::Ordering;
        let (fx, a, b) = two(20).await;
        let following = &b.inner.postgres.as_ref().unwrap().following;
        following.store(false, Ordering::Relaxed);
        for i in 0..60 {
            create(&a, &format!("c{i}"), "v").await;
        }
        following.store(true, Ordering::Relaxed);
        let last = a.revision();
        eventually("server b caught up", || b.revision() == last).await;
        // A client listed on A at `last - 2` and now watches through B: the log still has it.
        let mut watch = b
            .watch(WatchStart::After(last - 2))
            .unwrap_or_else(|e| panic!("a watch from {} on B (the log keeps it): {e}", last - 2));
        assert_eq!(next_event(&mut watch).await.rev(), last - 1);
        assert_eq!(next_event(&mut watch).await.rev(), last);
        drop(watch);
        fx.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn restarting_every_server_keeps_everything() {
        let (fx, a, b) = two(1000).await;
        for i in 0..10 {
            create(&a, &format!("a{i}"), "v").await;
            create(&b, &format!("b{i}"), "v").await;
        }
        let updated =
            b.write(Write::Update { key: key("a3"), object: cm("a3", "by b"), expected_rev: None }).await.unwrap();
        let deleted = a.write(Write::Delete { key: key("b4"), expected_rev: None }).await.unwrap();
        let last = deleted.rev;
        eventually("both servers at the last revision", || a.revision() == last && b.revision() == last).await;
        let before = listed(&a);
        assert_eq!(listed(&b), before);
        assert_eq!(before.len(), 19);
        fx.close(a).await;
        fx.close(b).await;

        let a = fx.open(1000).await;
        let b = fx.open(1000).await;
        for store in [&a, &b] {
            assert_eq!(store.revision(), last);
            assert_eq!(listed(store), before);
        }
        let mut watch = b.watch(WatchStart::After(updated.rev - 1)).unwrap();
        let modified = next_event(&mut watch).await;
        assert_eq!((modified.kind, modified.rev()), (EventType::Modified, updated.rev));
        assert_eq!(modified.previous.as_ref().unwrap().object["data"]["k"], "v");
        assert_eq!(next_event(&mut watch).await.rev(), last);
        assert_eq!(create(&a, "after", "v").await.rev, last + 1);
        assert_eq!(next_event(&mut watch).await.rev(), last + 1);
        drop(watch);
        fx.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fencing_holds_across_servers() {
        let (fx, a, b) = two(1000).await;
        let (old, new) = ("server-a_0000000a", "server-b_0000000b");
        a.write(Write::Create { key: lease_key(), object: lease(old) }).await.unwrap();
        // B decides against the lease as it stands in the database, whatever it has seen.
        let x = fenced(&b, old, Write::Create { key: key("x"), object: cm("x", "1") }).await.unwrap();
        takeover(&a, new).await;
        assert_fenced(
            fenced(&b, old, Write::Update { key: key("x"), object: cm("x", "2"), expected_rev: None }).await,
            Some(new),
        );
        assert_fenced(fenced(&a, old, Write::Delete { key: key("x"), expected_rev: None }).await, Some(new));
        assert_eq!(a.get(&key("x")).unwrap().rev, x.rev);
        fenced(&b, new, Write::Update { key: key("x"), object: cm("x", "3"), expected_rev: Some(x.rev) })
            .await
            .unwrap();

        // The deposed leader's writes racing the takeover: those that commit come before it.
        takeover(&a, old).await;
        let mut writes = Vec::new();
        for i in 0..20 {
            let b = b.clone();
            writes.push(tokio::spawn(async move {
                let name = format!("race-{i}");
                fenced(&b, old, Write::Create { key: key(&name), object: cm(&name, "1") }).await
            }));
        }
        let taken = takeover(&a, new).await;
        let (mut before, mut refused) = (0, 0);
        for write in writes {
            match write.await.unwrap() {
                Ok(stored) => {
                    assert!(
                        stored.rev < taken.rev,
                        "a fenced write committed at {} after the takeover at {}",
                        stored.rev,
                        taken.rev
                    );
                    before += 1;
                }
                Err(WriteError::Fenced(_)) => refused += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        println!("deposed leader's racing writes: {before} before the takeover, {refused} refused");
        eventually("server b sees the takeover", || b.get(&lease_key()).is_some_and(|l| l.rev == taken.rev)).await;
        let stored = listed(&b).iter().filter(|(_, name, _)| name.starts_with("race-")).count();
        assert_eq!(stored, before, "exactly the acknowledged racing writes are stored");
        fx.finish().await;
    }
}

/// One server on Postgres whose connection fails during COMMIT.
mod lost_commit {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_whose_connection_failed_is_answered_by_what_the_database_holds() {
        let fx = Fixture::new(Backend::Postgres).await;
        let store = fx.open(100).await;
        let lose = |applied| *store.inner.postgres.as_ref().unwrap().lose_commit.lock().unwrap() = Some(applied);
        let mut watch = store.watch(WatchStart::Now).unwrap();

        lose(true);
        let x =
            store.write(Write::Create { key: key("x"), object: cm("x", "1") }).await.expect("committed: acknowledged");
        assert_eq!(store.get(&key("x")).unwrap().rev, x.rev);
        let seen = next_event(&mut watch).await;
        assert_eq!((seen.rev(), seen.kind), (x.rev, EventType::Added));

        lose(false);
        let e = store
            .write(Write::Update { key: key("x"), object: cm("x", "2"), expected_rev: Some(x.rev) })
            .await
            .unwrap_err();
        match e {
            WriteError::Failed(m) => assert!(m.contains("may have been applied"), "{m}"),
            e => panic!("a commit that was not applied: {e:?}"),
        }
        assert_eq!(store.get(&key("x")).unwrap().rev, x.rev);

        lose(true);
        let d =
            store.write(Write::Delete { key: key("x"), expected_rev: Some(x.rev) }).await.expect("delete committed");
        assert!(store.get(&key("x")).is_none());
        let seen = next_event(&mut watch).await;
        assert_eq!((seen.rev(), seen.kind), (d.rev, EventType::Deleted));
        assert!(create(&store, "y", "1").await.rev > d.rev);
        drop(watch);
        fx.finish().await;
    }
}

/// A Postgres datastore that cannot be reached: the error names where, never the password.
#[tokio::test]
async fn an_unreachable_postgres_gives_a_clear_error_without_the_password() {
    let datastore = Datastore::parse("postgres://wharf:s3cret@127.0.0.1:1/nope").unwrap();
    let message = Store::connect(&datastore, StoreOptions::default()).await.err().unwrap().to_string();
    println!("{message}");
    assert!(message.contains("127.0.0.1:1"), "the error should name the database: {message}");
    assert!(!message.contains("s3cret"), "the error shows the password: {message}");
    let bad = Datastore::parse("mysql://wharf:s3cret@db/wharf").unwrap_err();
    assert!(bad.contains("postgres://") && !bad.contains("s3cret"), "{bad}");
}

/// `SharedFiles` directly on a test database.
mod files {
    use super::*;

    #[tokio::test]
    async fn put_get_list_delete() {
        let db = TestDb::create().await;
        let pool = db.pool().await;
        let files = SharedFiles::init(pool.clone()).await.unwrap();
        SharedFiles::init(pool.clone()).await.unwrap(); // idempotent
        assert_eq!(files.get("pki/ca.crt").await.unwrap(), None);
        files.put("pki/ca.crt", b"cert 1").await.unwrap();
        files.put("pki/ca.crt", b"cert 2").await.unwrap();
        assert_eq!(files.get("pki/ca.crt").await.unwrap().as_deref(), Some(&b"cert 2"[..]));
        let binary: Vec<u8> = (0..=255).collect();
        files.put("registry/blobs/sha256/00", &binary).await.unwrap();
        files.put("registry/blobs/sha256/01", b"").await.unwrap();
        files.put("registry/repositories/a_b/_tags/v1", b"x").await.unwrap();
        files.put("registry/repositories/axb/_tags/v1", b"x").await.unwrap();
        files.put("registry/repositories/a%/_tags/v1", b"x").await.unwrap();
        assert_eq!(files.get("registry/blobs/sha256/00").await.unwrap(), Some(binary));
        assert_eq!(files.get("registry/blobs/sha256/01").await.unwrap(), Some(Vec::new()));

        assert_eq!(
            files.list("registry/blobs/").await.unwrap(),
            ["registry/blobs/sha256/00", "registry/blobs/sha256/01"]
        );
        // `_` and `%` are literal characters of a prefix, not LIKE wildcards.
        assert_eq!(files.list("registry/repositories/a_").await.unwrap(), ["registry/repositories/a_b/_tags/v1"]);
        assert_eq!(files.list("registry/repositories/a%").await.unwrap(), ["registry/repositories/a%/_tags/v1"]);
        let all = files.list("").await.unwrap();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!((all.len(), &all), (6, &sorted));

        assert!(files.delete("pki/ca.crt").await.unwrap());
        assert!(!files.delete("pki/ca.crt").await.unwrap());
        assert_eq!(files.get("pki/ca.crt").await.unwrap(), None);
        assert_eq!(files.put_if_absent("pki/ca.crt", b"first").await.unwrap(), b"first");
        assert_eq!(files.put_if_absent("pki/ca.crt", b"second").await.unwrap(), b"first");
        pool.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_put_if_absent_from_two_servers_agree_on_one_winner() {
        let db = TestDb::create().await;
        let (pool_a, pool_b) = (db.pool().await, db.pool().await);
        // Both servers create the table at once, as two servers starting together do.
        let (a, b) = tokio::join!(SharedFiles::init(pool_a.clone()), SharedFiles::init(pool_b.clone()));
        let (a, b) = (a.unwrap(), b.unwrap());
        for round in 0..20 {
            let name = format!("pki/key-{round}");
            let race = |files: &SharedFiles, data: &'static [u8]| {
                let (files, name) = (files.clone(), name.clone());
                tokio::spawn(async move { files.put_if_absent(&name, data).await.unwrap() })
            };
            let (wa, wb) = (race(&a, b"from a"), race(&b, b"from b"));
            let (wa, wb) = (wa.await.unwrap(), wb.await.unwrap());
            assert_eq!(wa, wb, "round {round}: both servers see the same winner");
            assert!(wa == b"from a" || wa == b"from b");
            assert_eq!(a.get(&name).await.unwrap(), Some(wa.clone()));
            assert_eq!(b.get(&name).await.unwrap(), Some(wa));
        }
        pool_a.close().await;
        pool_b.close().await;
    }
}

/// A fresh Postgres database `wharf_t_<random>` on the server `WHARF_TEST_DATABASE_URL` names,
/// dropped when this guard is (also when the test fails).
struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl TestDb {
    async fn create() -> Self {
        let admin = std::env::var("WHARF_TEST_DATABASE_URL")
            .unwrap_or_else(|_| panic!("set WHARF_TEST_DATABASE_URL (scripts/test starts Debian's postgresql)"));
        let name = format!("wharf_t_{}", uuid::Uuid::new_v4().simple());
        let pool = admin_pool(&admin).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
        pool.close().await;
        let url = with_database(&admin, &name);
        Self { admin, name, url }
    }

    /// A small pool on the test database.
    async fn pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&self.url).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Its own runtime: drop runs inside the test's, which may be shutting down.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let pool = admin_pool(&admin).await;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let result = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                pool.close().await;
                result.map(|_| ())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}: {dropped:?}", self.name);
        }
    }
}

async fn admin_pool(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to WHARF_TEST_DATABASE_URL ({}): {e}", Datastore::redact(url)))
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let authority = url.find("://").map(|i| i + 3).unwrap_or(0);
    let path = url[authority..].find('/').map(|i| authority + i).unwrap_or(url.len());
    let query = url[path..].find('?').map(|i| &url[path + i..]).unwrap_or("");
    format!("{}/{database}{query}", &url[..path])
}

#[test]
fn test_database_urls_name_the_database() {
    assert_eq!(with_database("postgres://u:p@h:5432/postgres", "x"), "postgres://u:p@h:5432/x");
    assert_eq!(with_database("postgres://u@h/postgres?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    assert_eq!(with_database("postgresql://h", "x"), "postgresql://h/x");
}
