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
