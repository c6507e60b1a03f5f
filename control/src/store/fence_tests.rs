//! Fencing on both backends, and the Postgres backend across two `Store`s (two servers).

use serde_json::json;

use super::*;

fn lease_key() -> ObjectKey {
    ObjectKey::new("leases.coordination.k8s.io", "kube-system", "wharf-controller-manager")
}

fn lease(holder: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "wharf-controller-manager", "namespace": "kube-system"},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 10}})
}

fn cm(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"k": value}})
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("configmaps", "default", name)
}

fn fence(holder: &str) -> Fence {
    Fence { lease: lease_key(), holder: holder.into() }
}

async fn fenced_write(store: &Store, holder: &str, write: Write) -> Result<Arc<Stored>, WriteError> {
    FENCE.scope(fence(holder), store.write(write)).await
}

/// The leader's writes commit; after another server takes the lease, the old leader's are
/// refused naming the new holder, and nothing of them is stored.
async fn fencing_follows_the_lease(store: &Store) {
    let none = fenced_write(store, "a", Write::Create { key: key("x"), object: cm("x", "0") }).await;
    assert!(matches!(&none, Err(WriteError::Fenced(m)) if m.contains("held by nobody")), "{none:?}");

    let l = store.write(Write::Create { key: lease_key(), object: lease("a") }).await.unwrap();
    let ok = fenced_write(store, "a", Write::Create { key: key("x"), object: cm("x", "1") }).await.unwrap();
    store.write(Write::Update { key: lease_key(), object: lease("b"), expected_rev: Some(l.rev) }).await.unwrap();

    let refused =
        fenced_write(store, "a", Write::Update { key: key("x"), object: cm("x", "2"), expected_rev: None }).await;
    match refused {
        Err(WriteError::Fenced(message)) => assert!(message.contains("held by b"), "{message}"),
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert_eq!(store.get(&key("x")).unwrap().rev, ok.rev);
    fenced_write(store, "b", Write::Update { key: key("x"), object: cm("x", "3"), expected_rev: Some(ok.rev) })
        .await
        .unwrap();
    // Unfenced writes are not affected.
    store.write(Write::Delete { key: key("x"), expected_rev: None }).await.unwrap();
}

/// Within one batch the fence sees the lease as the batch's earlier writes left it.
async fn fence_and_lease_change_in_one_batch(store: &Store) {
    let l = match store.get(&lease_key()) {
        Some(l) => store.write(Write::Update { key: lease_key(), object: lease("a"), expected_rev: Some(l.rev) }),
        None => store.write(Write::Create { key: lease_key(), object: lease("a") }),
    };
    let l = l.await.unwrap();
    let take = store.write(Write::Update { key: lease_key(), object: lease("b"), expected_rev: Some(l.rev) });
    let late = fenced_write(store, "a", Write::Create { key: key("late"), object: cm("late", "1") });
    let (take, late) = tokio::join!(take, late);
    take.unwrap();
    // Either order is possible, but the outcome agrees with the final lease history.
    match late {
        Ok(stored) => assert!(stored.rev < store.get(&lease_key()).unwrap().rev),
        Err(e) => assert!(matches!(e, WriteError::Fenced(_)), "{e:?}"),
    }
}

fn sqlite(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("wharf.db"), StoreOptions { window: 100, synchronous_full: true }).unwrap()
}

#[tokio::test]
async fn sqlite_fencing_follows_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    fencing_follows_the_lease(&sqlite(&dir)).await;
}

#[tokio::test]
async fn sqlite_fence_in_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    fence_and_lease_change_in_one_batch(&sqlite(&dir)).await;
}

/// A fresh database on the test Postgres, dropped when this goes out of scope.
struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl TestDb {
    async fn new() -> Self {
        let admin = std::env::var("WHARF_TEST_DATABASE_URL")
            .expect("set WHARF_TEST_DATABASE_URL (scripts/test starts Debian's postgresql)");
        let name = format!("wharf_t_{:016x}", rand::random::<u64>());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
        let url = format!("{base}/{name}");
        Self { admin, name, url }
    }

    async fn store(&self, window: usize) -> Store {
        Store::connect(&Datastore::Postgres(self.url.clone()), StoreOptions { window, synchronous_full: true })
            .await
            .unwrap()
    }

    async fn drop_db(self) {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn postgres_fencing_follows_the_lease() {
    let db = TestDb::new().await;
    let store = db.store(100).await;
    fencing_follows_the_lease(&store).await;
    fence_and_lease_change_in_one_batch(&db.store(100).await).await;
    store.close().await;
    db.drop_db().await;
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what}");
}

#[tokio::test]
async fn postgres_two_servers_share_one_history() {
    let db = TestDb::new().await;
    let (a, b) = (db.store(1000).await, db.store(1000).await);
    let mut watch_b = b.watch(WatchStart::Now).unwrap();

    // A write on A reaches B's memory and watchers, with B's previous state.
    let x = a.write(Write::Create { key: key("x"), object: cm("x", "1") }).await.unwrap();
    let seen = tokio::time::timeout(std::time::Duration::from_secs(5), watch_b.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((seen.kind, seen.rev()), (EventType::Added, x.rev));

    // CAS is decided against the database, even when B's memory would lag.
    let stale = b.write(Write::Update { key: key("x"), object: cm("x", "b"), expected_rev: Some(x.rev - 1) }).await;
    assert_eq!(stale.unwrap_err(), WriteError::Conflict);
    let y = b.write(Write::Update { key: key("x"), object: cm("x", "2"), expected_rev: Some(x.rev) }).await.unwrap();
    let again = a.write(Write::Update { key: key("x"), object: cm("x", "3"), expected_rev: Some(x.rev) }).await;
    assert_eq!(again.unwrap_err(), WriteError::Conflict);
    assert_eq!(a.get(&key("x")).unwrap().rev, y.rev, "A caught up before deciding");

    // Concurrent writers on both servers: distinct revisions, and every watcher sees one
    // history in increasing order with nothing skipped.
    let mut watch_a = a.watch(WatchStart::After(y.rev)).unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let name = format!("c{i}");
            store.write(Write::Create { key: key(&name), object: cm(&name, "x") }).await.unwrap().rev
        }));
    }
    let mut revs = Vec::new();
    for t in tasks {
        revs.push(t.await.unwrap());
    }
    revs.sort();
    revs.dedup();
    assert_eq!(revs.len(), 200);
    for watch in [&mut watch_a, &mut watch_b] {
        let mut got = Vec::new();
        while got.len() < 200 {
            let e =
                tokio::time::timeout(std::time::Duration::from_secs(5), watch.next()).await.unwrap().unwrap().unwrap();
            if e.object.key.name.starts_with('c') {
                got.push(e.rev());
            }
        }
        assert_eq!(got, revs);
    }
    until("both servers at the same revision", || a.revision() == b.revision()).await;

    // How long a write acknowledged by A takes to reach a watch on B (printed, not asserted).
    let mut delays = Vec::new();
    for i in 0..20 {
        let name = format!("d{i}");
        let written = a.write(Write::Create { key: key(&name), object: cm(&name, "x") }).await.unwrap();
        let acked = std::time::Instant::now();
        loop {
            let e = tokio::time::timeout(std::time::Duration::from_secs(5), watch_b.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if e.rev() == written.rev {
                break;
            }
        }
        delays.push(acked.elapsed());
    }
    delays.sort();
    println!("watch delay A→B over 20 writes: median {:?}, max {:?}", delays[10], delays[19]);
    for s in [&a, &b] {
        s.close().await;
    }
    db.drop_db().await;
}

#[tokio::test]
async fn postgres_compaction_keeps_the_window_on_every_server() {
    let db = TestDb::new().await;
    let (a, b) = (db.store(20).await, db.store(20).await);
    for i in 0..100 {
        let name = format!("c{i}");
        if i % 2 == 0 { &a } else { &b }
            .write(Write::Create { key: key(&name), object: cm(&name, "x") })
            .await
            .unwrap();
    }
    until("both servers at the same revision", || a.revision() == b.revision()).await;
    for s in [&a, &b] {
        assert!(matches!(s.watch(WatchStart::After(1)), Err(Error::Gone(_))));
        s.watch(WatchStart::After(s.revision() - 10)).unwrap();
    }
    // The log holds about the window; a server starting later loads the same objects.
    let c = db.store(20).await;
    assert_eq!(c.list("configmaps", None, None, 0, |_| true).items.len(), 100);
    assert_eq!(c.revision(), a.revision());
    let pool = a.inner.postgres.as_ref().unwrap().pool.clone();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM wharf_log").fetch_one(&pool).await.unwrap();
    println!("log rows after 100 writes with a window of 20: {rows}");
    assert!(rows < 40, "{rows}");
    for s in [&a, &b, &c] {
        s.close().await;
    }
    db.drop_db().await;
}

#[tokio::test]
async fn postgres_bad_urls_say_what_is_wrong() {
    let ds = Datastore::parse("postgres://wharf:s3cret@127.0.0.1:1/nope").unwrap();
    let err = Store::connect(&ds, StoreOptions::default()).await.err().unwrap().to_string();
    assert!(err.contains("127.0.0.1:1") && !err.contains("s3cret"), "{err}");
}

#[tokio::test]
async fn postgres_a_server_behind_the_compacted_log_reloads_and_ends_its_watches() {
    use std::sync::atomic::Ordering;
    let db = TestDb::new().await;
    let (a, b) = (db.store(20).await, db.store(20).await);
    let x = a.write(Write::Create { key: key("x"), object: cm("x", "1") }).await.unwrap();
    until("B sees x", || b.get(&key("x")).is_some()).await;
    let mut watch = b.watch(WatchStart::Now).unwrap();
    let following = &b.inner.postgres.as_ref().unwrap().following;
    following.store(false, Ordering::Relaxed);
    // A writes far past the window while B does not follow: the log is compacted beyond B.
    a.write(Write::Delete { key: key("x"), expected_rev: Some(x.rev) }).await.unwrap();
    for i in 0..60 {
        let name = format!("c{i}");
        a.write(Write::Create { key: key(&name), object: cm(&name, "x") }).await.unwrap();
    }
    assert!(b.get(&key("x")).is_some(), "B is behind");
    following.store(true, Ordering::Relaxed);
    until("B reloads", || b.revision() == a.revision()).await;
    assert!(b.get(&key("x")).is_none());
    assert_eq!(b.list("configmaps", None, None, 0, |_| true).items.len(), 60);
    // The watch B was serving cannot continue across the reload: 410 Gone on its next event.
    a.write(Write::Create { key: key("after"), object: cm("after", "x") }).await.unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), watch.next()).await.unwrap().unwrap();
    assert!(matches!(next, Err(Error::Gone(_))), "{next:?}");
    // New watches from B's current revision work.
    let mut fresh = b.watch(WatchStart::Now).unwrap();
    a.write(Write::Create { key: key("later"), object: cm("later", "x") }).await.unwrap();
    let e = tokio::time::timeout(std::time::Duration::from_secs(5), fresh.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(e.object.key.name, "later");
    for s in [&a, &b] {
        s.close().await;
    }
    db.drop_db().await;
}

/// Concurrent creates through one and through two servers (printed, not asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_throughput_with_one_and_two_servers() {
    let db = TestDb::new().await;
    let stores = [db.store(10_000).await, db.store(10_000).await];
    for servers in [1, 2] {
        let start = std::time::Instant::now();
        let mut tasks = Vec::new();
        for i in 0..2000 {
            let store = stores[i % servers].clone();
            tasks.push(tokio::spawn(async move {
                let name = format!("t{servers}-{i}");
                store.write(Write::Create { key: key(&name), object: cm(&name, "x") }).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let took = start.elapsed();
        println!("{servers} server(s): 2000 concurrent creates in {took:?} = {:.0}/s", 2000.0 / took.as_secs_f64());
    }
    for s in &stores {
        s.close().await;
    }
    db.drop_db().await;
}
