//! Files every server of a cluster shares through the database: the CA and service-account
//! keys, the admin, node and server tokens, and the embedded registry's content. Only a shared
//! datastore (Postgres) has them; with SQLite the one server keeps them on its own disk.

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

fn not_yet() -> Error {
    Error::Internal("shared files are not implemented yet".into())
}

impl SharedFiles {
    /// Creates the table if needed.
    pub async fn init(pool: sqlx::PgPool) -> Result<Self> {
        Ok(Self { pool })
    }

    /// The file's content, if it exists.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let _ = (&self.pool, name);
        Err(not_yet())
    }

    /// Stores (or replaces) the file.
    pub async fn put(&self, name: &str, data: &[u8]) -> Result<()> {
        let _ = (name, data);
        Err(not_yet())
    }

    /// Stores `data` unless the file exists; returns what is stored afterwards (the winner when
    /// several servers race to create the same file).
    pub async fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<Vec<u8>> {
        let _ = (name, data);
        Err(not_yet())
    }

    /// Removes the file; whether it existed.
    pub async fn delete(&self, name: &str) -> Result<bool> {
        let _ = name;
        Err(not_yet())
    }

    /// The names starting with `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let _ = prefix;
        Err(not_yet())
    }
}
