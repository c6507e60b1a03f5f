//! The durable half of the store: the SQLite schema, loading at start, and the single writer
//! thread that applies batches of writes in one transaction each (group commit).

use std::path::Path;
use std::sync::Weak;
use std::sync::mpsc::Receiver;

use rusqlite::{Connection, params};

use super::{Event, EventType, Inner, ObjectKey, Queued, Stored, WriteError};
use crate::error::{Error, Result};

/// Most writes applied in one transaction.
const MAX_BATCH: usize = 1024;

pub(super) struct Database {
    conn: Connection,
}

fn db_error(e: rusqlite::Error) -> Error {
    Error::Internal(format!("database: {e}"))
}

fn parse(data: &[u8]) -> Result<serde_json::Value> {
    serde_json::from_slice(data).map_err(|e| Error::Internal(format!("stored object is not JSON: {e}")))
}

impl Database {
    pub(super) fn open(path: &Path, synchronous_full: bool) -> Result<Self> {
        let conn = Connection::open(path)
            .map_err(|e| Error::Internal(format!("cannot open the database {}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db_error)?;
        conn.pragma_update(None, "synchronous", if synchronous_full { "FULL" } else { "NORMAL" }).map_err(db_error)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS objects (
                 resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                 rev INTEGER NOT NULL, data BLOB NOT NULL,
                 PRIMARY KEY (resource, namespace, name)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS log (
                 rev INTEGER PRIMARY KEY, type INTEGER NOT NULL,
                 resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL);",
        )
        .map_err(db_error)?;
        Ok(Self { conn })
    }

    /// Every current object, and the highest revision among them.
    pub(super) fn load_objects(&mut self) -> Result<(Vec<Stored>, i64)> {
        let mut stmt =
            self.conn.prepare("SELECT resource, namespace, name, rev, data FROM objects").map_err(db_error)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    ObjectKey::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?),
                    row.get::<_, i64>(3)?,
                    row.get::<_, Vec<u8>>(4)?,
                ))
            })
            .map_err(db_error)?;
        let mut out = Vec::new();
        let mut max_rev = 0;
        for row in rows {
            let (key, rev, data) = row.map_err(db_error)?;
            max_rev = max_rev.max(rev);
            out.push(Stored::new(key, rev, parse(&data)?));
        }
        Ok((out, max_rev))
    }

    /// The newest `window` events in order, and the revision below the oldest of them. Each
    /// event's `previous` is the object's state before it when the durable log still holds it
    /// (the log keeps up to a tenth more than the window), so that a selector watch resuming
    /// after a restart still sees objects leave and enter its selector.
    pub(super) fn load_window(&mut self, window: usize) -> Result<(Vec<Event>, i64)> {
        let mut stmt = self
            .conn
            .prepare("SELECT rev, type, resource, namespace, name, data FROM log ORDER BY rev")
            .map_err(db_error)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    ObjectKey::new(row.get::<_, String>(2)?, row.get::<_, String>(3)?, row.get::<_, String>(4)?),
                    row.get::<_, Vec<u8>>(5)?,
                ))
            })
            .map_err(db_error)?;
        let mut out = Vec::new();
        for row in rows {
            let (rev, code, key, data) = row.map_err(db_error)?;
            out.push((rev, code, key, parse(&data)?));
        }
        Ok(super::events_from_log(out, window))
    }

    fn commit(&mut self, events: &[Event]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO objects (resource, namespace, name, rev, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut remove =
                tx.prepare_cached("DELETE FROM objects WHERE resource = ?1 AND namespace = ?2 AND name = ?3")?;
            let mut log = tx.prepare_cached(
                "INSERT INTO log (rev, type, resource, namespace, name, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for event in events {
                let stored = &event.object;
                let key = &stored.key;
                let data: &[u8] = stored.json();
                match event.kind {
                    EventType::Deleted => remove.execute(params![key.resource, key.namespace, key.name])?,
                    _ => put.execute(params![key.resource, key.namespace, key.name, stored.rev, data])?,
                };
                log.execute(params![stored.rev, event.kind.code(), key.resource, key.namespace, key.name, data])?;
            }
        }
        tx.commit()
    }

    fn compact(&mut self, keep_after: i64) -> rusqlite::Result<usize> {
        self.conn.execute("DELETE FROM log WHERE rev <= ?1", [keep_after])
    }

    #[cfg(test)]
    pub(super) fn integrity_check_of(path: &Path) -> String {
        Self::open(path, false).expect("database opens").integrity_check()
    }

    #[cfg(test)]
    fn integrity_check(&self) -> String {
        self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity_check runs")
    }
}

/// The writer thread: batches writes, commits each batch once, then publishes the events to
/// memory and to watchers before acknowledging them.
pub(super) fn run_writer(mut db: Database, writes: Receiver<Queued>, inner: Weak<Inner>, window: usize) {
    let mut compacted_on_disk = 0i64;
    while let Ok(first) = writes.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match writes.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else { return };

        let (outcomes, rev) = {
            let state = inner.state.read().expect("store lock");
            let base = state.rev;
            super::decide_batch(&state, batch, base)
        };

        let events: Vec<Event> = outcomes.iter().filter_map(|(_, o)| o.as_ref().ok().cloned()).collect();
        if !events.is_empty()
            && let Err(e) = db.commit(&events)
        {
            tracing::error!(error = %e, "store commit failed");
            for (reply, outcome) in outcomes {
                let _ = reply.send(outcome.and(Err(WriteError::Failed("the write could not be made durable".into()))));
            }
            continue;
        }

        super::publish(&inner, &events, window);
        for (reply, outcome) in outcomes {
            let _ = reply.send(outcome.map(|event| event.object));
        }

        // Trim the durable log in steps so it stays near the window without a delete per write.
        let keep_after = rev - window as i64;
        if keep_after - compacted_on_disk > (window as i64 / 10).max(1) {
            match db.compact(keep_after) {
                Ok(_) => compacted_on_disk = keep_after,
                Err(e) => tracing::warn!(error = %e, "log compaction failed"),
            }
        }
    }
}
