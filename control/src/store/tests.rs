use serde_json::json;

use super::*;

fn cm(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"k": value}})
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("configmaps", "default", name)
}

fn open(dir: &tempfile::TempDir, window: usize) -> Store {
    Store::open(&dir.path().join("wharf.db"), StoreOptions { window, synchronous_full: true }).unwrap()
}

#[tokio::test]
async fn writes_are_guarded_by_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, 100);
    let a = store.write(Write::Create { key: key("a"), object: cm("a", "1") }).await.unwrap();
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
    store.write(Write::Delete { key: key("a"), expected_rev: Some(b.rev) }).await.unwrap();
    assert!(store.get(&key("a")).is_none());
}

#[tokio::test]
async fn concurrent_writes_get_distinct_increasing_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, 1000);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        let name = format!("cm-{i}");
        tasks.push(tokio::spawn(async move {
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
    assert_eq!(*revs.last().unwrap(), store.revision());
}

#[tokio::test]
async fn state_and_revisions_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let store = open(&dir, 100);
        for i in 0..5 {
            let n = format!("c{i}");
            store.write(Write::Create { key: key(&n), object: cm(&n, "v") }).await.unwrap();
        }
        store.write(Write::Delete { key: key("c0"), expected_rev: None }).await.unwrap().rev
    };
    let store = open(&dir, 100);
    assert_eq!(store.revision(), last);
    assert!(store.get(&key("c0")).is_none());
    assert_eq!(store.list("configmaps", Some("default"), None, 0, |_| true).items.len(), 4);
    let next = store.write(Write::Create { key: key("c9"), object: cm("c9", "v") }).await.unwrap();
    assert_eq!(next.rev, last + 1);
    assert_eq!(sqlite::Database::integrity_check_of(&dir.path().join("wharf.db")), "ok");
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, 100);
    for i in 0..7 {
        let n = format!("c{i}");
        store.write(Write::Create { key: key(&n), object: cm(&n, "v") }).await.unwrap();
    }
    let first = store.list("configmaps", Some("default"), None, 3, |_| true);
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.remaining, 4);
    let second = store.list("configmaps", Some("default"), first.next.clone(), 3, |_| true);
    assert_eq!(second.items[0].key.name, "c3");
    let third = store.list("configmaps", Some("default"), second.next.clone(), 3, |_| true);
    assert_eq!(third.items.len(), 1);
    assert!(third.next.is_none());
    assert!(store.list("configmaps", Some("other"), None, 0, |_| true).items.is_empty());
}

#[tokio::test]
async fn watch_resumes_from_a_revision_and_expires_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, 5);
    let start = store.revision();
    let mut revs = Vec::new();
    for i in 0..3 {
        let n = format!("w{i}");
        revs.push(store.write(Write::Create { key: key(&n), object: cm(&n, "v") }).await.unwrap().rev);
    }
    let mut watch = store.watch(WatchStart::After(revs[0])).unwrap();
    let e = watch.next().await.unwrap().unwrap();
    assert_eq!((e.kind, e.rev()), (EventType::Added, revs[1]));
    assert_eq!(watch.next().await.unwrap().unwrap().rev(), revs[2]);
    store.write(Write::Delete { key: key("w0"), expected_rev: None }).await.unwrap();
    let deleted = watch.next().await.unwrap().unwrap();
    assert_eq!(deleted.kind, EventType::Deleted);
    assert_eq!(deleted.object.key.name, "w0");

    for i in 0..10 {
        let n = format!("x{i}");
        store.write(Write::Create { key: key(&n), object: cm(&n, "v") }).await.unwrap();
    }
    let gone = store.watch(WatchStart::After(start)).err().unwrap();
    assert!(matches!(gone, Error::Gone(_)), "{gone:?}");
}

#[tokio::test]
async fn events_replayed_after_reopen_carry_the_previous_state() {
    let dir = tempfile::tempdir().unwrap();
    let (created, updated) = {
        let store = open(&dir, 100);
        let a = store.write(Write::Create { key: key("p"), object: cm("p", "1") }).await.unwrap();
        let b = store.write(Write::Update { key: key("p"), object: cm("p", "2"), expected_rev: None }).await.unwrap();
        store.write(Write::Delete { key: key("p"), expected_rev: None }).await.unwrap();
        (a.rev, b.rev)
    };
    let store = open(&dir, 100);
    let mut watch = store.watch(WatchStart::After(created - 1)).unwrap();
    let added = watch.next().await.unwrap().unwrap();
    assert!(added.previous.is_none());
    let modified = watch.next().await.unwrap().unwrap();
    assert_eq!(modified.kind, EventType::Modified);
    assert_eq!(modified.previous.as_ref().unwrap().object["data"]["k"], "1");
    let deleted = watch.next().await.unwrap().unwrap();
    assert_eq!(deleted.kind, EventType::Deleted);
    assert_eq!(deleted.previous.as_ref().unwrap().rev, updated);
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
            .expect("set WHARF_TEST_DATABASE_URL (scripts/test starts Debian's postgresql)");
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

#[tokio::test]
async fn shared_files_put_get_list_delete() {
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

    assert_eq!(files.list("registry/blobs/").await.unwrap(), ["registry/blobs/sha256/00", "registry/blobs/sha256/01"]);
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
        let (wa, wb) = tokio::join!(
            tokio::spawn({
                let (a, name) = (a.clone(), name.clone());
                async move { a.put_if_absent(&name, b"from a").await.unwrap() }
            }),
            tokio::spawn({
                let (b, name) = (b.clone(), name.clone());
                async move { b.put_if_absent(&name, b"from b").await.unwrap() }
            }),
        );
        let (wa, wb) = (wa.unwrap(), wb.unwrap());
        assert_eq!(wa, wb, "round {round}: both servers see the same winner");
        assert!(wa == b"from a" || wa == b"from b");
        assert_eq!(a.get(&name).await.unwrap(), Some(wa.clone()));
        assert_eq!(b.get(&name).await.unwrap(), Some(wa));
    }
    pool_a.close().await;
    pool_b.close().await;
}
