//! The highly-available control plane (issue 9): several `wharf server`s on one PostgreSQL
//! database, checked as an operator would with kubectl.

mod common;

use common::postgres::TestDatabase;

/// Each test gets an empty database of its own, gone once the test is done with it.
#[test]
fn test_database_is_fresh_and_dropped() {
    let base = TestDatabase::create();
    let db = TestDatabase::create();
    assert_ne!(base.name, db.name);
    assert_eq!(db.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), "0");
    let name = db.name.clone();
    drop(db);
    let exists = base.query(&format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"));
    assert_eq!(exists, "0", "the test database {name} was not dropped");
}
