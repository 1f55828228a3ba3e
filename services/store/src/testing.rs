//! Test support: fresh, isolated stores for this crate's conformance suite
//! (`tests/conformance.rs`) and for the end-to-end tests.
//!
//! Every call creates a new store that shares nothing with any other: a new
//! SQLite file in a temporary directory, or a new PostgreSQL database named
//! `omniroute_test_<uuid>` on the server given by `OMNIROUTE_TEST_DATABASE_URL`
//! (default [`DEFAULT_ADMIN_URL`]). The databases are left behind for
//! inspection; drop them with
//! `psql -Atc "SELECT 'DROP DATABASE ' || datname || ';' FROM pg_database
//! WHERE datname LIKE 'omniroute_test_%'" | psql`.
//!
//! These helpers panic instead of returning errors: they are meant for tests.

pub use crate::postgres::{HotStatement, hot_statements as pg_hot_statements};
use std::time::Duration;

use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::{PgStore, PgStoreConfig, SqliteStore};

/// The environment variable naming the PostgreSQL server tests use: a URL or
/// key=value string for a role allowed to `CREATE DATABASE`.
pub const DATABASE_URL_ENV: &str = "OMNIROUTE_TEST_DATABASE_URL";

/// The server used when [`DATABASE_URL_ENV`] is not set.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The admin connection string: [`DATABASE_URL_ENV`] or [`DEFAULT_ADMIN_URL`].
pub fn admin_url() -> String {
    std::env::var(DATABASE_URL_ENV)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// Creates a new, empty database on the test server and returns a connection
/// string for it (same host, port, user and options as the admin URL).
///
/// # Panics
///
/// When the server cannot be reached or refuses `CREATE DATABASE`.
pub async fn fresh_pg_url() -> String {
    let admin = admin_url();
    let mut config: tokio_postgres::Config = admin.parse().unwrap_or_else(|e| {
        panic!("{DATABASE_URL_ENV}={admin:?} is not a valid connection string: {e}")
    });
    config.connect_timeout(Duration::from_secs(10));
    let (client, connection) = config.connect(NoTls).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach the test PostgreSQL server at {admin:?} ({}); start it, or point \
             {DATABASE_URL_ENV} at one where this user may CREATE DATABASE",
            crate::error_chain(&e)
        )
    });
    let connection = tokio::spawn(connection);
    let name = format!("omniroute_test_{}", Uuid::now_v7().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "CREATE DATABASE {name} on {admin:?} failed: {}",
                crate::error_chain(&e)
            )
        });
    drop(client);
    // The connection task ends once the client is gone.
    let _ = connection.await;
    with_dbname(&admin, &name)
}

/// A configuration for a test store on `url`.
pub fn pg_config(url: String) -> PgStoreConfig {
    PgStoreConfig {
        url,
        pool_size: 4,
        connect_timeout: Duration::from_secs(10),
        writers: 2,
    }
}

/// A [`PgStore`] on a new, empty database (see [`fresh_pg_url`]).
///
/// # Panics
///
/// When the server cannot be reached or the migrations fail.
pub async fn fresh_pg_store() -> PgStore {
    let url = fresh_pg_url().await;
    PgStore::connect(&pg_config(url))
        .await
        .unwrap_or_else(|e| panic!("connecting the test PgStore failed: {e:?}"))
}

/// A [`SqliteStore`] in a new temporary directory; the directory (and the
/// store file) is deleted when the returned guard is dropped, so keep it alive
/// as long as the store.
///
/// # Panics
///
/// When the directory or the store cannot be created.
pub async fn fresh_sqlite_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("create a temporary directory for the test store");
    let store = SqliteStore::open(dir.path().join("omniroute.db"))
        .await
        .unwrap_or_else(|e| panic!("opening the test SqliteStore failed: {e:?}"));
    (store, dir)
}

/// `url` with its database replaced by `dbname`, for both libpq forms: a
/// `postgres://` / `postgresql://` URL, or a `key=value` string.
fn with_dbname(url: &str, dbname: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme).map(|rest| (*scheme, rest)))
    else {
        let kept: Vec<&str> = url
            .split_whitespace()
            .filter(|pair| !pair.starts_with("dbname="))
            .collect();
        return format!("{} dbname={dbname}", kept.join(" "))
            .trim_start()
            .to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = before_query
        .split_once('/')
        .map_or(before_query, |(a, _)| a);
    let mut out = format!("{scheme}{authority}/{dbname}");
    if let Some(query) = query {
        // A dbname option would override the path: drop it.
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.is_empty() && !pair.starts_with("dbname="))
            .collect();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_dbname;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            with_dbname("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_dbname("postgresql://u:p@db:5433", "t1"),
            "postgresql://u:p@db:5433/t1"
        );
        assert_eq!(
            with_dbname("postgres://u@db/admin?sslmode=disable&dbname=x", "t1"),
            "postgres://u@db/t1?sslmode=disable"
        );
        assert_eq!(with_dbname("postgres://u@db/?", "t1"), "postgres://u@db/t1");
    }

    #[test]
    fn replaces_the_database_of_a_key_value_string() {
        assert_eq!(
            with_dbname("host=127.0.0.1 user=postgres dbname=postgres", "t1"),
            "host=127.0.0.1 user=postgres dbname=t1"
        );
        assert_eq!(
            with_dbname("host=/run/postgresql", "t1"),
            "host=/run/postgresql dbname=t1"
        );
    }
}
