//! Files every server of a cluster shares through the database: the CA and service-account
//! keys, the admin, node and server tokens, and the embedded registry's content. Only a shared
//! datastore (Postgres) has them; with SQLite the one server keeps them on its own disk.
//!
//! One table, `shared_files(name TEXT PRIMARY KEY, data BYTEA NOT NULL)`. Each operation is one
//! statement, so servers racing on the same name see a single outcome: the first committed
//! `put_if_absent` wins and every other caller reads the winner back.

use crate::error::{Error, Result};

/// Named byte strings in the shared database; cheap to clone.
#[derive(Clone)]
pub struct SharedFiles {
    pool: sqlx::PgPool,
}

impl std::fmt::Debug for SharedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedFiles")
    }
}

/// Serializes the table's creation when several servers start at once (`CREATE TABLE IF NOT
/// EXISTS` alone can fail on a concurrent creation); any constant unique to this use will do.
const INIT_LOCK: i64 = 0x7768_6172_6673_6631; // "wharfsf1"

fn failed(what: &str, name: &str, e: sqlx::Error) -> Error {
    Error::Internal(format!("shared file {what} {name:?}: {e}"))
}

impl SharedFiles {
    /// Creates the table if needed.
    pub async fn init(pool: sqlx::PgPool) -> Result<Self> {
        let create = async {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(INIT_LOCK).execute(&mut *tx).await?;
            sqlx::query("CREATE TABLE IF NOT EXISTS shared_files (name TEXT PRIMARY KEY, data BYTEA NOT NULL)")
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        create.await.map_err(|e| Error::Internal(format!("cannot create the shared_files table: {e}")))?;
        Ok(Self { pool })
    }

    /// The file's content, if it exists.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT data FROM shared_files WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| failed("read", name, e))
    }

    /// Stores (or replaces) the file.
    pub async fn put(&self, name: &str, data: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO shared_files (name, data) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET data = EXCLUDED.data",
        )
        .bind(name)
        .bind(data)
        .execute(&self.pool)
        .await
        .map_err(|e| failed("write", name, e))?;
        Ok(())
    }

    /// Stores `data` unless the file exists; returns what is stored afterwards (the winner when
    /// several servers race to create the same file).
    pub async fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<Vec<u8>> {
        loop {
            // A racing insert waits for the first one to commit, then does nothing.
            let inserted: Option<Vec<u8>> = sqlx::query_scalar(
                "INSERT INTO shared_files (name, data) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING RETURNING data",
            )
            .bind(name)
            .bind(data)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| failed("create", name, e))?;
            if let Some(data) = inserted {
                return Ok(data);
            }
            // A new statement sees the winner's commit; it is absent only if it was deleted
            // since, and then this caller may try again to be the one that stores it.
            if let Some(winner) = self.get(name).await? {
                return Ok(winner);
            }
        }
    }

    /// Removes the file; whether it existed.
    pub async fn delete(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM shared_files WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(|e| failed("delete", name, e))?;
        Ok(done.rows_affected() > 0)
    }

    /// The names starting with `prefix`, sorted (byte order, as Rust sorts strings).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        // `left` compares the prefix literally: `%` and `_` in names are not wildcards here.
        sqlx::query_scalar(
            "SELECT name FROM shared_files WHERE left(name, char_length($1)) = $1 ORDER BY name COLLATE \"C\"",
        )
        .bind(prefix)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| failed("list", prefix, e))
    }
}
