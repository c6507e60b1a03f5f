//! Objects and their revision log. SQLite holds the durable copy (one table of current objects,
//! one table of revisions); memory holds the current objects and a bounded window of recent
//! events, from which lists and watches are served. One writer thread applies writes in batches
//! and commits each batch once (group commit, `synchronous=FULL`); readers never wait on disk.
//!
//! The store is deliberately dumb: compare-and-swap on resourceVersion, nothing about kinds.
//! Kubernetes semantics (finalizers, generation, defaults) live in the API layer above it.

mod shared_files;
mod sqlite;
mod watch;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
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
        match (url.find("://"), url.find('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &url[scheme + 3..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                    None => url.to_string(),
                }
            }
            _ => url.to_string(),
        }
    }
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

struct Inner {
    state: RwLock<State>,
    writes: std::sync::mpsc::Sender<(Write, Reply)>,
    events: broadcast::Sender<Event>,
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
        let mut state = State::default();
        let (objects, rev) = db.load_objects()?;
        for stored in objects {
            state
                .objects
                .entry(stored.key.resource.clone())
                .or_default()
                .insert((stored.key.namespace.clone(), stored.key.name.clone()), Arc::new(stored));
        }
        let (events, compacted) = db.load_window(options.window)?;
        state.rev = rev.max(events.last().map(|e| e.rev()).unwrap_or(0));
        state.compacted = if events.is_empty() { state.rev } else { compacted };
        state.window = events.into();
        let (events_tx, _) = broadcast::channel(4096);
        let (writes_tx, writes_rx) = std::sync::mpsc::channel();
        let inner = Arc::new(Inner { state: RwLock::new(state), writes: writes_tx, events: events_tx });
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
            Datastore::Postgres(_) => Err(Error::Internal(format!("{datastore}: Postgres is not supported yet"))),
        }
    }

    /// The files every server of the cluster shares (CA, tokens, registry content), when the
    /// datastore is shared by several servers; `None` for SQLite, whose server keeps them on disk.
    pub fn shared_files(&self) -> Option<SharedFiles> {
        None
    }

    /// Applies one write and waits until it is durable.
    pub async fn write(&self, write: Write) -> Result<Arc<Stored>, WriteError> {
        let (tx, rx) = oneshot::channel();
        self.inner.writes.send((write, tx)).map_err(|_| WriteError::Failed("the store is closed".into()))?;
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

#[cfg(test)]
mod tests;
