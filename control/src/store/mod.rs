//! Objects and their revision log in SQLite.
