//! The durable half of the store on Postgres, shared by several servers: the schema, loading
//! at start, the writer task (one transaction per batch, serialized across servers on the
//! revision row), and the follower task that applies other servers' commits to memory.

use std::collections::HashMap;
#[cfg(test)]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgListener, PgNotification, PgPool, PgPoolOptions};
use sqlx::{PgConnection, Row};
use tokio::sync::{broadcast, mpsc};

use super::{
    Event, EventType, Inner, ObjectKey, Queued, SharedFiles, State, Store, StoreOptions, Stored, WriteError, Writes,
};
use crate::error::{Error, Result};

/// Most writes applied in one transaction.
const MAX_BATCH: usize = 1024;
/// The channel each commit notifies with its last revision.
const CHANNEL: &str = "wharf_store";
/// How often a follower reads the log even without a notification (a lost notification, a
/// listener reconnecting): the bound on how stale another server's memory can be.
const POLL: Duration = Duration::from_secs(1);
/// Connections in the pool (the listener has one more of its own).
const POOL_SIZE: u32 = 4;
/// Serializes schema creation when several servers start on a new database at once.
const SCHEMA_LOCK: i64 = 0x7768_6172_6600_0001;

/// What a Postgres-backed store keeps besides memory.
pub(super) struct Shared {
    pub(super) pool: PgPool,
    pub(super) files: SharedFiles,
    /// The last revision this server's writer tried to commit: its notification needs no read
    /// (memory gets it from the writer, or after a failed commit from `settle`).
    committing: AtomicI64,
    /// Cleared by tests to make this server fall behind (its follower skips its turns).
    #[cfg(test)]
    pub(super) following: AtomicBool,
    /// Set by tests: the next COMMIT fails after committing (`true`) or rolling back (`false`).
    #[cfg(test)]
    pub(super) lose_commit: std::sync::Mutex<Option<bool>>,
}

impl Shared {
    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}

fn parse(data: &[u8]) -> std::result::Result<serde_json::Value, sqlx::Error> {
    serde_json::from_slice(data).map_err(|e| sqlx::Error::Decode(format!("stored object is not JSON: {e}").into()))
}

/// The error text without the URL's password, should a driver message ever echo it.
fn scrub(message: String, url: &str) -> String {
    match super::password(url) {
        Some(p) => message.replace(p, "***"),
        None => message,
    }
}

/// Connects, creates the schema if needed, loads a consistent snapshot and starts the writer
/// and follower tasks. `display` is the URL without its password.
pub(super) async fn connect(url: &str, display: &str, options: StoreOptions) -> Result<Store> {
    let unreachable =
        |e: sqlx::Error| Error::Internal(format!("cannot use the datastore {display}: {}", scrub(e.to_string(), url)));
    // One direct attempt first: the pool would retry a refused connection until its timeout.
    let probe = <PgConnection as sqlx::Connection>::connect(url).await.map_err(unreachable)?;
    let _ = sqlx::Connection::close(probe).await;
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // A server that stalls inside a batch must not hold the revision lock forever.
                sqlx::query("SET idle_in_transaction_session_timeout = '10s'").execute(conn).await?;
                Ok(())
            })
        })
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(unreachable)?;
    create_schema(&pool).await.map_err(unreachable)?;
    let files = SharedFiles::init(pool.clone()).await?;
    let state = load(&pool, options.window).await.map_err(unreachable)?;
    let listening = async {
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    let listener = match listening.await {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!(error = %scrub(e.to_string(), url), "cannot LISTEN; following other servers by polling");
            None
        }
    };

    let (events_tx, _) = broadcast::channel(4096);
    let (writes_tx, writes_rx) = mpsc::unbounded_channel();
    let inner = Arc::new(Inner {
        state: RwLock::new(state),
        writes: Writes::Postgres(writes_tx),
        events: events_tx,
        resets: Default::default(),
        postgres: Some(Shared {
            pool: pool.clone(),
            files,
            committing: AtomicI64::new(0),
            #[cfg(test)]
            following: AtomicBool::new(true),
            #[cfg(test)]
            lose_commit: Default::default(),
        }),
    });
    tokio::spawn(run_writer(pool.clone(), writes_rx, Arc::downgrade(&inner), options.window));
    tokio::spawn(run_follower(pool, listener, Arc::downgrade(&inner), options.window));
    Ok(Store { inner })
}

async fn create_schema(pool: &PgPool) -> std::result::Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SCHEMA_LOCK).execute(&mut *tx).await?;
    for statement in [
        "CREATE TABLE IF NOT EXISTS wharf_objects (
             resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
             rev BIGINT NOT NULL, data BYTEA NOT NULL,
             PRIMARY KEY (resource, namespace, name))",
        "CREATE TABLE IF NOT EXISTS wharf_log (
             rev BIGINT PRIMARY KEY, type SMALLINT NOT NULL,
             resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, data BYTEA NOT NULL)",
        "CREATE TABLE IF NOT EXISTS wharf_revision (
             id INTEGER PRIMARY KEY CHECK (id = 1), rev BIGINT NOT NULL, compacted BIGINT NOT NULL)",
        "INSERT INTO wharf_revision (id, rev, compacted) VALUES (1, 0, 0) ON CONFLICT (id) DO NOTHING",
    ] {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await
}

fn key_of(row: &sqlx::postgres::PgRow, from: usize) -> std::result::Result<ObjectKey, sqlx::Error> {
    Ok(ObjectKey::new(
        row.try_get::<String, _>(from)?,
        row.try_get::<String, _>(from + 1)?,
        row.try_get::<String, _>(from + 2)?,
    ))
}

/// The revision and compaction mark, as of `conn`'s snapshot (or locked, with `for_update`).
async fn revision(conn: &mut PgConnection, for_update: bool) -> std::result::Result<(i64, i64), sqlx::Error> {
    let sql = if for_update {
        "SELECT rev, compacted FROM wharf_revision WHERE id = 1 FOR UPDATE"
    } else {
        "SELECT rev, compacted FROM wharf_revision WHERE id = 1"
    };
    let row = sqlx::query(sql).fetch_one(&mut *conn).await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

async fn load_objects(conn: &mut PgConnection) -> std::result::Result<Vec<Stored>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT resource, namespace, name, rev, data FROM wharf_objects").fetch_all(&mut *conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let data: Vec<u8> = row.try_get(4)?;
        out.push(Stored::new(key_of(&row, 0)?, row.try_get(3)?, parse(&data)?));
    }
    Ok(out)
}

/// Log rows after `after` up to `upto`, in revision order.
async fn load_log(
    conn: &mut PgConnection,
    after: i64,
    upto: i64,
) -> std::result::Result<Vec<(i64, i64, ObjectKey, serde_json::Value)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT rev, type, resource, namespace, name, data FROM wharf_log WHERE rev > $1 AND rev <= $2 ORDER BY rev",
    )
    .bind(after)
    .bind(upto)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let data: Vec<u8> = row.try_get(5)?;
        out.push((row.try_get(0)?, i64::from(row.try_get::<i16, _>(1)?), key_of(&row, 2)?, parse(&data)?));
    }
    Ok(out)
}

/// Objects, revision and the log's window as of `conn`'s snapshot (or lock on the revision row).
async fn snapshot(conn: &mut PgConnection, window: usize) -> std::result::Result<State, sqlx::Error> {
    let (rev, _) = revision(conn, false).await?;
    let objects = load_objects(conn).await?;
    let log = load_log(conn, 0, rev).await?;
    let (events, compacted) = super::events_from_log(log, window);
    Ok(super::state_from(objects, rev, events, compacted))
}

/// The state at start, from one consistent snapshot.
async fn load(pool: &PgPool, window: usize) -> std::result::Result<State, sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let state = snapshot(&mut tx, window).await?;
    tx.commit().await?;
    Ok(state)
}

/// Brings memory up to `upto` (the revision as of `conn`'s snapshot or lock, whose log keeps
/// revisions above `compacted`): the log's events in order, or — when memory is older than the
/// log — a reload as at start (objects and the log's window) that ends older watches with 410 Gone.
async fn catch_up(
    conn: &mut PgConnection,
    inner: &Inner,
    upto: i64,
    compacted: i64,
    window: usize,
) -> std::result::Result<(), sqlx::Error> {
    let have = inner.state.read().expect("store lock").rev;
    if have >= upto {
        return Ok(());
    }
    if compacted > have {
        let loaded = snapshot(conn, window).await?;
        let mut state = inner.state.write().expect("store lock");
        if state.rev >= loaded.rev {
            return Ok(());
        }
        tracing::warn!(from = state.rev, to = loaded.rev, "this server fell behind the shared log; reloading");
        *state = loaded;
        inner.resets.fetch_add(1, Ordering::Release);
        return Ok(());
    }
    let rows = load_log(conn, have, upto).await?;
    let mut state = inner.state.write().expect("store lock");
    for (rev, code, key, object) in rows {
        if rev <= state.rev {
            continue;
        }
        let kind = EventType::from_code(code);
        let previous = state.get(&key);
        let event = Event { kind, object: Arc::new(Stored::new(key, rev, object)), previous };
        state.apply(&event);
        let _ = inner.events.send(event);
    }
    state.rev = state.rev.max(upto);
    state.trim(window);
    Ok(())
}

/// Columns of a batch for `UNNEST`.
#[derive(Default)]
struct Columns {
    rev: Vec<i64>,
    kind: Vec<i16>,
    resource: Vec<String>,
    namespace: Vec<String>,
    name: Vec<String>,
    data: Vec<Vec<u8>>,
}

impl Columns {
    fn push(&mut self, event: &Event) {
        let stored = &event.object;
        self.rev.push(stored.rev);
        self.kind.push(event.kind.code() as i16);
        self.resource.push(stored.key.resource.clone());
        self.namespace.push(stored.key.namespace.clone());
        self.name.push(stored.key.name.clone());
        self.data.push(stored.json().to_vec());
    }
}

/// Writes a decided batch: the log rows, each key's final row, the revision, the notification,
/// and a compaction step when the log has outgrown the window.
async fn write_batch(
    conn: &mut PgConnection,
    events: &[Event],
    last: i64,
    compacted: i64,
    window: usize,
) -> std::result::Result<(), sqlx::Error> {
    let mut log = Columns::default();
    let mut last_of: HashMap<&ObjectKey, &Event> = HashMap::new();
    for event in events {
        log.push(event);
        last_of.insert(&event.object.key, event);
    }
    sqlx::query(
        "INSERT INTO wharf_log (rev, type, resource, namespace, name, data)
         SELECT * FROM UNNEST($1::int8[], $2::int2[], $3::text[], $4::text[], $5::text[], $6::bytea[])",
    )
    .bind(log.rev)
    .bind(log.kind)
    .bind(log.resource)
    .bind(log.namespace)
    .bind(log.name)
    .bind(log.data)
    .execute(&mut *conn)
    .await?;
    let (mut put, mut gone) = (Columns::default(), Columns::default());
    for event in last_of.values() {
        if event.kind == EventType::Deleted { gone.push(event) } else { put.push(event) }
    }
    if !put.rev.is_empty() {
        sqlx::query(
            "INSERT INTO wharf_objects (resource, namespace, name, rev, data)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::bytea[])
             ON CONFLICT (resource, namespace, name) DO UPDATE SET rev = EXCLUDED.rev, data = EXCLUDED.data",
        )
        .bind(put.resource)
        .bind(put.namespace)
        .bind(put.name)
        .bind(put.rev)
        .bind(put.data)
        .execute(&mut *conn)
        .await?;
    }
    if !gone.rev.is_empty() {
        sqlx::query(
            "DELETE FROM wharf_objects o USING UNNEST($1::text[], $2::text[], $3::text[]) AS k(resource, namespace, name)
             WHERE o.resource = k.resource AND o.namespace = k.namespace AND o.name = k.name",
        )
        .bind(gone.resource)
        .bind(gone.namespace)
        .bind(gone.name)
        .execute(&mut *conn)
        .await?;
    }
    // Trim the log in steps so it stays near the window without a delete per batch.
    let keep_after = last - window as i64;
    let compact_to = (keep_after - compacted > (window as i64 / 10).max(1)).then_some(keep_after);
    if let Some(to) = compact_to {
        sqlx::query("DELETE FROM wharf_log WHERE rev <= $1").bind(to).execute(&mut *conn).await?;
    }
    sqlx::query("UPDATE wharf_revision SET rev = $1, compacted = $2 WHERE id = 1")
        .bind(last)
        .bind(compact_to.unwrap_or(compacted))
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(last.to_string()).execute(&mut *conn).await?;
    Ok(())
}

/// The writer task: batches writes; per batch, one transaction that locks the revision row
/// (serializing every server's writers, so revision order is commit order), catches memory up
/// to the locked revision (memory then equals the database), decides the writes against it
/// exactly as SQLite does, writes and commits; then publishes and acknowledges.
async fn run_writer(pool: PgPool, mut writes: mpsc::UnboundedReceiver<Queued>, inner: Weak<Inner>, window: usize) {
    while let Some(first) = writes.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match writes.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        let fail = |batch: Vec<Queued>, e: &sqlx::Error| {
            tracing::error!(error = %e, "store transaction failed");
            for queued in batch {
                let _ = queued.reply.send(Err(WriteError::Failed("the datastore is unavailable".into())));
            }
        };

        let mut tx = match pool.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                fail(batch, &e);
                continue;
            }
        };
        let (base, compacted) = match revision(&mut tx, true).await {
            Ok(locked) => locked,
            Err(e) => {
                fail(batch, &e);
                continue;
            }
        };
        if let Err(e) = catch_up(&mut tx, &inner, base, compacted, window).await {
            fail(batch, &e);
            continue;
        }
        let (outcomes, last) = {
            let state = inner.state.read().expect("store lock");
            super::decide_batch(&state, batch, base)
        };
        let events: Vec<Event> = outcomes.iter().filter_map(|(_, o)| o.as_ref().ok().cloned()).collect();
        // The error, and whether it came from COMMIT itself (which the database may have applied).
        let committed = if events.is_empty() {
            tx.rollback().await.map_err(|e| (e, false))
        } else {
            match write_batch(&mut tx, &events, last, compacted, window).await {
                Ok(()) => {
                    if let Some(pg) = &inner.postgres {
                        pg.committing.store(last, Ordering::Relaxed);
                    }
                    commit(tx, &inner).await.map_err(|e| (e, true))
                }
                Err(e) => Err((e, false)),
            }
        };
        if let Err((e, at_commit)) = committed {
            tracing::error!(error = %e, "store commit failed");
            let message = if at_commit {
                // Once that transaction has ended, memory shows whether it committed.
                if let Err(e) = settle(&pool, &inner, window).await {
                    tracing::warn!(error = %e, "cannot tell whether a failed commit was applied");
                }
                "the datastore connection failed during commit; the write may have been applied"
            } else {
                "the write could not be made durable"
            };
            let state = inner.state.read().expect("store lock");
            for (reply, outcome) in outcomes {
                let _ = reply.send(match outcome {
                    Ok(event) if at_commit && applied(&state, &event) => Ok(event.object),
                    outcome => outcome.and(Err(WriteError::Failed(message.into()))),
                });
            }
            continue;
        }
        super::publish(&inner, &events, window);
        for (reply, outcome) in outcomes {
            let _ = reply.send(outcome.map(|event| event.object));
        }
    }
}

/// COMMIT; tests can make it fail after the database committed or rolled back.
async fn commit(tx: sqlx::Transaction<'_, sqlx::Postgres>, inner: &Inner) -> std::result::Result<(), sqlx::Error> {
    #[cfg(test)]
    if let Some(applied) = inner.postgres.as_ref().and_then(|pg| pg.lose_commit.lock().unwrap().take()) {
        if applied {
            tx.commit().await?
        } else {
            tx.rollback().await?
        }
        return Err(sqlx::Error::Protocol("test: the connection failed during COMMIT".into()));
    }
    let _ = inner;
    tx.commit().await
}

/// Catches memory up under the revision row's lock, so after any transaction still holding it
/// (one whose COMMIT's outcome is unknown) has ended.
async fn settle(pool: &PgPool, inner: &Inner, window: usize) -> std::result::Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let (rev, compacted) = revision(&mut tx, true).await?;
    catch_up(&mut tx, inner, rev, compacted, window).await?;
    tx.rollback().await
}

/// Whether memory holds `event` as it was decided: the same change at the same revision.
fn applied(state: &State, event: &Event) -> bool {
    state.window.iter().rev().take_while(|e| e.rev() >= event.rev()).any(|e| {
        e.rev() == event.rev()
            && e.kind == event.kind
            && e.object.key == event.object.key
            && e.object.json() == event.object.json()
    })
}

/// The revision a commit's notification announces; `i64::MAX` (read the log) when unreadable.
fn announced(notification: &PgNotification) -> i64 {
    notification.payload().parse().unwrap_or(i64::MAX)
}

/// Applies other servers' commits: on each notification of a revision memory does not have yet
/// (this server's own commits reach memory from its writer), and every [`POLL`] regardless.
async fn run_follower(pool: PgPool, mut listener: Option<PgListener>, inner: Weak<Inner>, window: usize) {
    let mut followed = Instant::now();
    loop {
        // The newest revision announced; unknown (a poll, a listener error) reads the log.
        let mut newest = i64::MAX;
        match listener.as_mut() {
            Some(l) => {
                tokio::select! {
                    received = l.recv() => {
                        match received {
                            Ok(notification) => newest = announced(&notification),
                            Err(e) => {
                                tracing::debug!(error = %e, "store listener");
                                tokio::time::sleep(POLL).await;
                            }
                        }
                        while let Some(notification) = l.next_buffered() {
                            newest = newest.max(announced(&notification));
                        }
                    }
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
            None => tokio::time::sleep(POLL).await,
        }
        if pool.is_closed() {
            return;
        }
        let Some(inner) = inner.upgrade() else { return };
        #[cfg(test)]
        if !inner.postgres.as_ref().is_some_and(|pg| pg.following.load(Ordering::Relaxed)) {
            continue;
        }
        let own = inner.postgres.as_ref().map_or(0, |pg| pg.committing.load(Ordering::Relaxed));
        let have = inner.state.read().expect("store lock").rev.max(own);
        if newest <= have && followed.elapsed() < POLL {
            continue;
        }
        followed = Instant::now();
        if let Err(e) = follow_once(&pool, &inner, window).await {
            tracing::warn!(error = %e, "cannot read the shared store's changes");
        }
    }
}

async fn follow_once(pool: &PgPool, inner: &Inner, window: usize) -> std::result::Result<(), sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let (rev, compacted) = revision(&mut tx, false).await?;
    catch_up(&mut tx, inner, rev, compacted, window).await?;
    tx.commit().await
}
