//! What the SQL backends share: the identifier rule for configurable table
//! names and, for SQLite, the durability settings and time conversions.

/// A table name (or one part of `schema.table`) safe to put in SQL: ASCII
/// letters, digits and `_`, not starting with a digit, at most 48 bytes.
pub(crate) fn is_identifier(part: &str) -> bool {
    let mut bytes = part.bytes();
    part.len() <= 48
        && bytes
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

#[cfg(feature = "sqlite")]
pub(crate) mod sqlite {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use rusqlite::Connection;

    use crate::backend::StoreError;

    /// Checks a configurable table name; see [`is_identifier`](super::is_identifier).
    pub(crate) fn validate_table(table: &str) -> Result<(), StoreError> {
        if super::is_identifier(table) {
            Ok(())
        } else {
            Err(StoreError::backend(format!(
                "invalid table name {table:?}: use ASCII letters, digits and `_` \
                 (not starting with a digit), at most 48 bytes"
            )))
        }
    }

    /// What every connection of ours runs with: WAL (in-memory databases
    /// stay in "memory" mode), `synchronous=FULL` (a commit is on disk when
    /// it returns) and a `busy_timeout`.
    pub(crate) fn configure_durable(
        conn: &Connection,
        busy_timeout: Duration,
    ) -> rusqlite::Result<()> {
        conn.busy_timeout(busy_timeout)?;
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")
    }

    /// A time as Unix milliseconds (0 before the epoch).
    pub(crate) fn millis(time: SystemTime) -> i64 {
        time.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
    }

    /// Unix milliseconds as a time.
    pub(crate) fn time(millis: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
    }

    /// A duration in milliseconds, saturating.
    pub(crate) fn duration_millis(duration: Duration) -> i64 {
        i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
    }
}
