//! Objects and their revision log. The durable copy lives in SQLite (one server, the default)
//! or Postgres (several servers on one database); memory holds the current objects and a bounded
//! window of recent events, from which gets, lists and watches are served. Readers never wait on
//! the database.
//!
//! The store is deliberately dumb: compare-and-swap on resourceVersion, nothing about kinds.
//! Kubernetes semantics (finalizers, generation, defaults) live in the API layer above it.
//!
//! # One store, two backends
//!
//! Everything above the durable half is one implementation: the in-memory `State`, the watch
//! window and broadcast ([`WatchSource`]), the write API, and the decision of a batch of writes
//! (`decide_batch`: CAS on revisions, create/update/delete, fences) and its publication
//! (`publish`: memory, window, watchers, then the acknowledgement). A backend supplies the
//! durable half — load a snapshot and the window, commit a decided batch atomically, compact the
//! log, and (Postgres) follow changes made by other servers — behind `Writes`, the queue to
//! its writer:
//!
//! - **SQLite** (`sqlite.rs`): one writer thread batches the queue, decides against memory (the
//!   only writer, so memory *is* the database), commits the batch in one transaction
//!   (`synchronous=FULL`, WAL: group commit), publishes, then acknowledges.
//! - **Postgres** (`postgres.rs`): one writer task per server does the same, but the database
//!   is shared, so memory may lag other servers. Each batch runs in one transaction that first
//!   takes `SELECT rev, compacted FROM wharf_revision … FOR UPDATE` on a one-row counter. That
//!   lock serializes every server's batches, so revisions are assigned and committed in the same
//!   order: a transaction can take the lock only after the previous holder committed and became
//!   visible. Under the lock the writer catches memory up to the locked revision from the log
//!   (or reloads objects and log window if the log no longer reaches back), so memory equals the
//!   database's current rows; it then decides CAS and fences exactly as SQLite does, writes the
//!   log rows, each key's final row, the counter and a `pg_notify('wharf_store', rev)` with
//!   `UNNEST` arrays (a handful of statements per batch, not per write), commits, publishes its
//!   own events (read-your-writes on the writing server) and acknowledges. Throughput comes
//!   from batching, as with SQLite: a batch holds the lock for a few round trips. When COMMIT
//!   itself fails (the connection dropped), the database may have applied it: the writer takes
//!   the lock again (so that transaction has ended), catches up, acknowledges the writes memory
//!   now holds at their decided revisions and tells the others the write may have been applied.
//! - **Following** (Postgres): a follower task `LISTEN`s on `wharf_store` and also polls every
//!   second as a safety net (a lost notification, a reconnecting listener). Notifications carry
//!   the committed revision; those memory already has (or this server is committing) cause no
//!   read. Otherwise it reads the counter and the log after memory's revision in one
//!   `REPEATABLE READ` snapshot and applies the events in order, computing each event's
//!   `previous` from memory. Readers never assume rev+1 follows (batches that failed decisions
//!   and compaction leave gaps); because commit order is revision order, "everything after my
//!   revision" never skips a row. The writer and the follower both apply through the same
//!   rule — an event at or below memory's revision is already applied — so they cannot apply
//!   one twice or out of order.
//! - **Compaction**: the log keeps about `window` revisions; whichever server's batch finds the
//!   log more than a tenth over the window deletes the older rows and records the mark in
//!   `wharf_revision.compacted`, inside its locked transaction. A server whose memory is older
//!   than the mark (it was partitioned or paused) reloads as at start (the objects and the log's
//!   window from one snapshot); watches it was serving end with 410 Gone (clients relist), as do
//!   watches from before the mark; new watches from revisions the log keeps resume.
//! - **Fencing**: a write made inside [`FENCE`]`.scope` carries the fence to the writer, which
//!   refuses it with [`WriteError::Fenced`] unless the Lease at `fence.lease` (as the batch's
//!   earlier writes left it) names `fence.holder` — on Postgres under the counter lock, so a
//!   deposed leader's write cannot commit after another server's lease takeover committed.
//!
//! # Compared with kine
//!
//! kine (k3s) keeps etcd's keyspace in one SQL table whose auto-increment id is the revision,
//! appends with an INSERT guarded by a unique (name, prev_revision) constraint, and has each
//! server poll "rows after my revision" every second. Sequences hand out ids at INSERT, not at
//! COMMIT, so a later id can commit first; kine's poller therefore treats a missing id as
//! possibly in flight, waits, and after a second writes a "fill" row to skip it — a watch can
//! stall for that second, and an id that was merely slow is then lost to watchers. Here the
//! counter row lock makes revision order commit order, so a follower never waits on a gap and
//! never fills one; NOTIFY makes the usual delay milliseconds instead of the poll interval; CAS
//! and fences are decided inside the serialized transaction against rows memory has just caught
//! up to, which also gives a fence check atomic with the write (kine has no fencing); and gets,
//! lists and watches are served from memory rather than by SQL queries per request. The price
//! is that writers of all servers serialize on one row, which batching amortizes.

mod postgres;
mod shared_files;
mod sqlite;
mod watch;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

use crate::error::{Error, Result};
pub use shared_files::SharedFiles;
pub use watch::{WatchSource, WatchStart};

/// Where the store keeps its durable copy: `wharf server --datastore URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum Datastore {
    /// `sqlite://PATH`: one server, the embedded default (`sqlite://DATA_DIR/wharf.db`).
    Sqlite(std::path::PathBuf),
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (or `postgresql://`): several servers share it.
    Postgres(String),
}

impl Datastore {
    /// The default datastore of a data dir.
    pub fn default_for(data_dir: &Path) -> Self {
        Datastore::Sqlite(data_dir.join("wharf.db"))
    }

    /// Parses a `--datastore` value; the error says what is accepted.
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(format!("{url}: give the SQLite file, e.g. sqlite:///var/lib/wharf/wharf.db"));
            }
            return Ok(Datastore::Sqlite(path.into()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Datastore::Postgres(url.to_string()));
        }
        Err(format!("{}: expected sqlite://PATH or postgres://USER@HOST/DB", Self::redact(url)))
    }

    /// The URL with any password replaced by `***`, for logs and messages.
    fn redact(url: &str) -> String {
        match password(url) {
            Some(p) => {
                let start = p.as_ptr() as usize - url.as_ptr() as usize;
                format!("{}***{}", &url[..start], &url[start + p.len()..])
            }
            None => url.to_string(),
        }
    }
}

/// The non-empty password of a `scheme://user:password@host/…` URL.
fn password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let (userinfo, _) = rest.split_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

impl std::fmt::Display for Datastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Datastore::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Datastore::Postgres(url) => f.write_str(&Self::redact(url)),
        }
    }
}

impl std::fmt::Debug for Datastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A write's fencing token: it may commit only while the Lease at `lease` names `holder` in
/// `spec.holderIdentity`, checked atomically with the write. Controllers of a deposed leader
/// therefore cannot act after another server took the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: ObjectKey,
    pub holder: String,
}

tokio::task_local! {
    /// The fence of the request being served, if it carried one; [`Store::write`] applies it.
    pub static FENCE: Fence;
}

/// Where an object lives: its resource's storage key (`pods`, `deployments.apps`), namespace
/// (empty for cluster-scoped objects) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(resource: impl Into<String>, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { resource: resource.into(), namespace: namespace.into(), name: name.into() }
    }
}

/// An object as stored: its revision and its JSON, whose `metadata.resourceVersion` equals `rev`.
#[derive(Debug)]
pub struct Stored {
    pub key: ObjectKey,
    pub rev: i64,
    pub object: Value,
    json: OnceLock<Bytes>,
}

impl Stored {
    fn new(key: ObjectKey, rev: i64, object: Value) -> Self {
        Self { key, rev, object, json: OnceLock::new() }
    }

    /// The object serialized once, shared by every reader and watcher.
    pub fn json(&self) -> &Bytes {
        self.json.get_or_init(|| Bytes::from(serde_json::to_vec(&self.object).expect("a JSON value serializes")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }

    fn code(self) -> i64 {
        match self {
            EventType::Added => 0,
            EventType::Modified => 1,
            EventType::Deleted => 2,
        }
    }

    fn from_code(code: i64) -> Self {
        match code {
            0 => EventType::Added,
            1 => EventType::Modified,
            _ => EventType::Deleted,
        }
    }
}

/// One committed change. For a deletion, `object` is the last state with the deleting revision.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventType,
    pub object: Arc<Stored>,
    /// The state before this change, if there was one (lets selector watches see objects leave).
    pub previous: Option<Arc<Stored>>,
}

impl Event {
    pub fn rev(&self) -> i64 {
        self.object.rev
    }
}

/// A write the writer thread applies, guarded by the object's current revision.
#[derive(Debug)]
pub enum Write {
    /// Fails with AlreadyExists if the key exists.
    Create { key: ObjectKey, object: Value },
    /// Fails with NotFound if absent, Conflict if `expected_rev` is set and differs.
    Update { key: ObjectKey, object: Value, expected_rev: Option<i64> },
    /// Fails with NotFound if absent, Conflict if `expected_rev` is set and differs.
    Delete { key: ObjectKey, expected_rev: Option<i64> },
}

impl Write {
    fn key(&self) -> &ObjectKey {
        match self {
            Write::Create { key, .. } | Write::Update { key, .. } | Write::Delete { key, .. } => key,
        }
    }
}

/// Why the writer refused a write; the API layer turns these into Statuses with kind names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    AlreadyExists,
    NotFound,
    Conflict,
    /// The write carried a [`Fence`] whose holder no longer holds the lease; says who does.
    Fenced(String),
    Failed(String),
}

type Reply = oneshot::Sender<Result<Arc<Stored>, WriteError>>;

/// A decided write: where to answer, and the event it causes or why it was refused.
type Outcome = (Reply, Result<Event, WriteError>);

/// A write waiting for the writer: the write, the fence it carries, and where to answer.
struct Queued {
    write: Write,
    fence: Option<Fence>,
    reply: Reply,
}

/// In-memory view, updated only by the writer after each commit.
#[derive(Default)]
struct State {
    /// resource → (namespace, name) → object
    objects: HashMap<String, BTreeMap<(String, String), Arc<Stored>>>,
    /// Recent events, oldest first; events with rev ≤ `compacted` are gone.
    window: VecDeque<Event>,
    rev: i64,
    compacted: i64,
}

/// Tunables of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How many revisions the log and the watch window keep.
    pub window: usize,
    /// SQLite `synchronous` level; FULL makes every acknowledged write survive power loss.
    pub synchronous_full: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { window: 10_000, synchronous_full: true }
    }
}

/// The queue to the backend's writer: a thread for SQLite, a task for Postgres.
enum Writes {
    Sqlite(std::sync::mpsc::Sender<Queued>),
    Postgres(tokio::sync::mpsc::UnboundedSender<Queued>),
}

struct Inner {
    state: RwLock<State>,
    writes: Writes,
    events: broadcast::Sender<Event>,
    /// Bumped when memory is reloaded from the database (this server fell behind the shared
    /// log's compaction): watches started before cannot continue and end with 410 Gone.
    resets: AtomicU64,
    /// The shared database, for Postgres.
    postgres: Option<postgres::Shared>,
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// One page of a list.
pub struct ListPage {
    pub items: Vec<Arc<Stored>>,
    /// The revision the list was read at.
    pub rev: i64,
    /// The (namespace, name) to continue after, if more items remain.
    pub next: Option<(String, String)>,
    pub remaining: usize,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and loads it into memory.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Self> {
        let mut db = sqlite::Database::open(path, options.synchronous_full)?;
        let (objects, rev) = db.load_objects()?;
        let (events, compacted) = db.load_window(options.window)?;
        let state = state_from(objects, rev, events, compacted);
        let (events_tx, _) = broadcast::channel(4096);
        let (writes_tx, writes_rx) = std::sync::mpsc::channel();
        let inner = Arc::new(Inner {
            state: RwLock::new(state),
            writes: Writes::Sqlite(writes_tx),
            events: events_tx,
            resets: AtomicU64::new(0),
            postgres: None,
        });
        let writer_inner = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || sqlite::run_writer(db, writes_rx, writer_inner, options.window))
            .map_err(|e| Error::Internal(format!("cannot start the store writer: {e}")))?;
        Ok(Self { inner })
    }

    /// Connects to `datastore` and loads it into memory (see the module docs for Postgres).
    pub async fn connect(datastore: &Datastore, options: StoreOptions) -> Result<Self> {
        match datastore {
            Datastore::Sqlite(path) => Self::open(path, options),
            Datastore::Postgres(url) => postgres::connect(url, &datastore.to_string(), options).await,
        }
    }

    /// The files every server of the cluster shares (CA, tokens, registry content), when the
    /// datastore is shared by several servers; `None` for SQLite, whose server keeps them on disk.
    pub fn shared_files(&self) -> Option<SharedFiles> {
        self.inner.postgres.as_ref().map(|pg| pg.files.clone())
    }

    /// Releases the database connections now (Postgres) instead of when the last handle drops;
    /// later writes fail. A no-op for SQLite.
    pub async fn close(&self) {
        if let Some(pg) = &self.inner.postgres {
            pg.close().await;
        }
    }

    /// Applies one write and waits until it is durable. Inside [`FENCE`]`.scope`, the write
    /// commits only while the fence's holder holds its lease (else [`WriteError::Fenced`]).
    pub async fn write(&self, write: Write) -> Result<Arc<Stored>, WriteError> {
        let fence = FENCE.try_with(|f| f.clone()).ok();
        let (reply, rx) = oneshot::channel();
        let queued = Queued { write, fence, reply };
        let sent = match &self.inner.writes {
            Writes::Sqlite(tx) => tx.send(queued).is_ok(),
            Writes::Postgres(tx) => tx.send(queued).is_ok(),
        };
        if !sent {
            return Err(WriteError::Failed("the store is closed".into()));
        }
        rx.await.map_err(|_| WriteError::Failed("the store writer stopped".into()))?
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Stored>> {
        let state = self.inner.state.read().expect("store lock");
        state.objects.get(&key.resource)?.get(&(key.namespace.clone(), key.name.clone())).cloned()
    }

    /// The current revision.
    pub fn revision(&self) -> i64 {
        self.inner.state.read().expect("store lock").rev
    }

    /// Lists a resource, optionally in one namespace, after `start` (exclusive), keeping the
    /// objects `keep` accepts, at most `limit` of them (0 = all).
    pub fn list(
        &self,
        resource: &str,
        namespace: Option<&str>,
        start: Option<(String, String)>,
        limit: usize,
        keep: impl Fn(&Stored) -> bool,
    ) -> ListPage {
        use std::ops::Bound;
        let state = self.inner.state.read().expect("store lock");
        let mut page = ListPage { items: Vec::new(), rev: state.rev, next: None, remaining: 0 };
        let Some(objects) = state.objects.get(resource) else { return page };
        let lower = match (&start, namespace) {
            (Some(after), _) => Bound::Excluded(after.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        for ((ns, _), stored) in objects.range((lower, Bound::Unbounded)) {
            if namespace.is_some_and(|want| want != ns) {
                break;
            }
            if !keep(stored) {
                continue;
            }
            if limit > 0 && page.items.len() == limit {
                page.remaining += 1;
                continue;
            }
            page.items.push(stored.clone());
        }
        if page.remaining > 0 {
            page.next = page.items.last().map(|s| (s.key.namespace.clone(), s.key.name.clone()));
        }
        page
    }

    /// Starts following changes after `start`; see [`WatchSource`].
    pub fn watch(&self, start: WatchStart) -> Result<WatchSource> {
        WatchSource::new(self.clone(), start)
    }
}

impl State {
    fn get(&self, key: &ObjectKey) -> Option<Arc<Stored>> {
        self.objects.get(&key.resource)?.get(&(key.namespace.clone(), key.name.clone())).cloned()
    }

    /// Makes `event` current and appends it to the window (the caller broadcasts it).
    fn apply(&mut self, event: &Event) {
        let key = &event.object.key;
        let objects = self.objects.entry(key.resource.clone()).or_default();
        let slot = (key.namespace.clone(), key.name.clone());
        if event.kind == EventType::Deleted {
            objects.remove(&slot);
        } else {
            objects.insert(slot, event.object.clone());
        }
        self.window.push_back(event.clone());
        self.rev = self.rev.max(event.rev());
    }

    fn trim(&mut self, window: usize) {
        while self.window.len() > window {
            let oldest = self.window.pop_front().expect("non-empty window");
            self.compacted = oldest.rev();
        }
    }
}

/// Why a fenced write may not commit, given the lease as it stands in the same decision.
fn fenced(fence: &Fence, lease: Option<&Arc<Stored>>) -> Option<WriteError> {
    let holder = lease.and_then(|l| l.object.pointer("/spec/holderIdentity")).and_then(|h| h.as_str());
    if holder == Some(fence.holder.as_str()) {
        return None;
    }
    Some(WriteError::Fenced(format!(
        "the lease {}/{} is held by {}, not by {}",
        fence.lease.namespace,
        fence.lease.name,
        holder.filter(|h| !h.is_empty()).unwrap_or("nobody"),
        fence.holder
    )))
}

/// Decides one write against the current state (`current`), producing the event it causes.
fn decide(write: Write, current: Option<Arc<Stored>>, rev: i64) -> Result<Event, WriteError> {
    let with_rev = |mut object: serde_json::Value| {
        if let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.insert("resourceVersion".into(), rev.to_string().into());
        }
        object
    };
    let check = |expected: Option<i64>, current: &Option<Arc<Stored>>| match (expected, current) {
        (_, None) => Err(WriteError::NotFound),
        (Some(want), Some(have)) if want != have.rev => Err(WriteError::Conflict),
        _ => Ok(()),
    };
    match write {
        Write::Create { key, object } => match current {
            Some(_) => Err(WriteError::AlreadyExists),
            None => Ok(Event {
                kind: EventType::Added,
                object: Arc::new(Stored::new(key, rev, with_rev(object))),
                previous: None,
            }),
        },
        Write::Update { key, object, expected_rev } => {
            check(expected_rev, &current)?;
            Ok(Event {
                kind: EventType::Modified,
                object: Arc::new(Stored::new(key, rev, with_rev(object))),
                previous: current,
            })
        }
        Write::Delete { key, expected_rev } => {
            check(expected_rev, &current)?;
            let last = current.as_ref().expect("checked above").object.clone();
            Ok(Event {
                kind: EventType::Deleted,
                object: Arc::new(Stored::new(key, rev, with_rev(last))),
                previous: current,
            })
        }
    }
}

/// Decides a batch in order against `state` (which must equal the durable state at `base`):
/// each write sees the batch's earlier writes; a fence is checked against the lease as it stands
/// at that point. Returns each write's outcome and the batch's last revision.
fn decide_batch(state: &State, batch: Vec<Queued>, base: i64) -> (Vec<Outcome>, i64) {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut rev = base;
    let mut pending: HashMap<ObjectKey, Option<Arc<Stored>>> = HashMap::new();
    for Queued { write, fence, reply } in batch {
        let lookup = |key: &ObjectKey| match pending.get(key) {
            Some(p) => p.clone(),
            None => state.get(key),
        };
        if let Some(refused) = fence.as_ref().and_then(|f| fenced(f, lookup(&f.lease).as_ref())) {
            outcomes.push((reply, Err(refused)));
            continue;
        }
        let key = write.key().clone();
        let outcome = decide(write, lookup(&key), rev + 1);
        if let Ok(event) = &outcome {
            rev += 1;
            let after = (event.kind != EventType::Deleted).then(|| event.object.clone());
            pending.insert(key, after);
        }
        outcomes.push((reply, outcome));
    }
    (outcomes, rev)
}

/// Publishes committed events: memory, the window and watchers. Events at or below the
/// current revision are already applied (another path published them first) and are skipped.
fn publish(inner: &Inner, events: &[Event], window: usize) {
    let mut state = inner.state.write().expect("store lock");
    for event in events {
        if event.rev() <= state.rev {
            continue;
        }
        state.apply(event);
        // Sending fails only when nobody watches, which is fine.
        let _ = inner.events.send(event.clone());
    }
    state.trim(window);
}

/// Builds events from log rows in revision order, each with its `previous` when the rows
/// still hold it; keeps the newest `window`. Returns them and the revision below the oldest.
fn events_from_log(rows: Vec<(i64, i64, ObjectKey, serde_json::Value)>, window: usize) -> (Vec<Event>, i64) {
    let mut events = Vec::with_capacity(rows.len());
    let mut last: HashMap<ObjectKey, Arc<Stored>> = HashMap::new();
    for (rev, code, key, object) in rows {
        let kind = EventType::from_code(code);
        let object = Arc::new(Stored::new(key, rev, object));
        let previous = match kind {
            EventType::Added => {
                last.insert(object.key.clone(), object.clone());
                None
            }
            EventType::Modified => last.insert(object.key.clone(), object.clone()),
            EventType::Deleted => last.remove(&object.key),
        };
        events.push(Event { kind, object, previous });
    }
    let events = events.split_off(events.len().saturating_sub(window));
    let compacted = events.first().map(|e| e.rev() - 1).unwrap_or(0);
    (events, compacted)
}

/// The in-memory state from a loaded snapshot: objects, the revision, and the log's window.
fn state_from(objects: Vec<Stored>, rev: i64, events: Vec<Event>, compacted: i64) -> State {
    let mut state = State::default();
    for stored in objects {
        state
            .objects
            .entry(stored.key.resource.clone())
            .or_default()
            .insert((stored.key.namespace.clone(), stored.key.name.clone()), Arc::new(stored));
    }
    state.rev = rev.max(events.last().map(|e| e.rev()).unwrap_or(0));
    state.compacted = if events.is_empty() { state.rev } else { compacted };
    state.window = events.into();
    state
}

#[cfg(test)]
mod url_tests {
    use super::{Datastore, password};

    #[test]
    fn only_the_password_is_hidden() {
        assert_eq!(password("postgres://u:p%40ss@h:5432/db"), Some("p%40ss"));
        assert_eq!(password("postgres://u@h/db"), None);
        assert_eq!(password("postgres://u:@h/db"), None);
        assert_eq!(Datastore::redact("postgres://u:secret@h:5432/db?x=1"), "postgres://u:***@h:5432/db?x=1");
        assert_eq!(Datastore::redact("postgresql://h/db"), "postgresql://h/db");
    }
}

#[cfg(test)]
mod tests;
