//! A fresh PostgreSQL database per test, on the server `scripts/test` starts (Debian's
//! `postgresql`, role `wharf`), named by `WHARF_TEST_DATABASE_URL`.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The variable naming the server and role the tests create their databases with.
pub const DATABASE_URL_VAR: &str = "WHARF_TEST_DATABASE_URL";

/// The base URL (`postgres://wharf:wharf@127.0.0.1:5432/postgres`); fails the test when unset.
pub fn base_url() -> String {
    std::env::var(DATABASE_URL_VAR)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| panic!("set {DATABASE_URL_VAR} (scripts/test starts Debian's postgresql)"))
}

/// A database of its own for one test: created empty by [`TestDatabase::create`], dropped (with
/// whatever sessions still use it) when dropped.
pub struct TestDatabase {
    /// The URL of this database, for `wharf server --datastore` or `Store::connect`.
    pub url: String,
    /// Its name, `wharf_t_<random>`.
    pub name: String,
    base: String,
}

impl TestDatabase {
    pub fn create() -> Self {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let base = base_url();
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
        let name = format!("wharf_t_{:x}_{nanos:x}_{}", std::process::id(), COUNT.fetch_add(1, Ordering::Relaxed));
        psql(&base, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create the test database {name} on {DATABASE_URL_VAR}: {e}"));
        let url = with_database(&base, &name);
        TestDatabase { url, name, base }
    }

    /// Runs one SQL command on this database; its unaligned output (`psql -tA`).
    pub fn query(&self, sql: &str) -> String {
        psql(&self.url, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Err(e) = psql(&self.base, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

/// `base` with its database (the URL's path) replaced by `name`, keeping any `?options`.
fn with_database(base: &str, name: &str) -> String {
    let (url, query) = match base.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (base, None),
    };
    let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    let authority = match url[scheme_end..].find('/') {
        Some(i) => &url[..scheme_end + i],
        None => url,
    };
    match query {
        Some(query) => format!("{authority}/{name}?{query}"),
        None => format!("{authority}/{name}"),
    }
}

/// Runs `sql` with the psql client (installed with Debian's postgresql) on the database at `url`.
fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-t", "-A", "-c", sql])
        .output()
        .map_err(|e| format!("psql does not run ({e}): apt-get install postgresql-client"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}
