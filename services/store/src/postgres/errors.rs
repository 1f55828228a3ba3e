//! PostgreSQL's errors in the store's terms.

use crate::StoreError;

/// A database error in the store's terms: connection trouble is
/// [`StoreError::Unavailable`], serialization failures and deadlocks are
/// [`StoreError::Conflict`], the rest is a backend failure.
pub(super) fn db(e: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    let unavailable = match e.code() {
        // connection exceptions, insufficient resources (too many
        // connections, out of disk), operator intervention (shutdown,
        // crash recovery, cannot connect now), read-only standby
        Some(code) => {
            let code = code.code();
            if code == SqlState::T_R_SERIALIZATION_FAILURE.code()
                || code == SqlState::T_R_DEADLOCK_DETECTED.code()
            {
                return StoreError::Conflict(Box::new(e));
            }
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == SqlState::READ_ONLY_SQL_TRANSACTION.code()
        }
        // No SQL state: the connection closed or failed underneath.
        None => e.is_closed() || is_io(&e),
    };
    if unavailable {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::backend(e)
    }
}

fn is_io(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = e.source();
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// A pool that gave no connection: timeouts and failed connects are
/// [`StoreError::Unavailable`].
pub(super) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => match db(e) {
            StoreError::Backend(e) => StoreError::Unavailable(e),
            other => other,
        },
        PoolError::Timeout(_) | PoolError::Closed => StoreError::Unavailable(Box::new(e)),
        other => StoreError::backend(other),
    }
}
