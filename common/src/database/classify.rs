//! The one place a sqlx failure becomes a `StoreError`, for both services and
//! both backends. PostgreSQL errors go by SQLSTATE class, SQLite's by result
//! code; connection-level failures (I/O, TLS, pool timeout, a closed pool) are
//! `Unavailable`; a row that does not decode is `Corrupt`. Texts carry codes,
//! constraint and column names, never a value from the request or the row.
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::migrate::MigrateError;
use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

use crate::store::StoreError;

pub fn classify(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match e {
        E::Database(db) => database(db.as_ref()),
        E::Io(_)
        | E::Tls(_)
        | E::Protocol(_)
        | E::Configuration(_)
        | E::PoolTimedOut
        | E::PoolClosed
        | E::WorkerCrashed
        | E::BeginFailed => StoreError::Unavailable(e.to_string()),
        E::Encode(_) | E::InvalidArgument(_) => StoreError::Invalid("a value could not be encoded".into()),
        E::Migrate(m) => classify_migration(*m),
        E::RowNotFound => StoreError::Corrupt("an expected row is missing".into()),
        E::ColumnDecode { index, source } => StoreError::Corrupt(format!("column {index}: {source}")),
        E::ColumnNotFound(name) => StoreError::Corrupt(format!("column {name} is missing")),
        other => StoreError::Corrupt(other.to_string()),
    }
}

/// Migrations at start-up: a statement that failed is classified like any
/// other; a migration history this build does not match is `Corrupt`.
pub fn classify_migration(e: MigrateError) -> StoreError {
    match e {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => classify(e),
        other => StoreError::Corrupt(other.to_string()),
    }
}

fn database(db: &dyn DatabaseError) -> StoreError {
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let what = match db.constraint() {
        Some(constraint) => format!("{code} on {constraint}"),
        None => code.clone(),
    };
    if db.try_downcast_ref::<PgDatabaseError>().is_some() {
        return by_sqlstate(&code, what);
    }
    if let (Some(_), Ok(code)) = (db.try_downcast_ref::<SqliteError>(), code.parse::<i32>()) {
        return by_sqlite_code(code, db.kind(), what);
    }
    StoreError::Corrupt(what)
}

/// PostgreSQL, by SQLSTATE (appendix A of its manual).
fn by_sqlstate(code: &str, what: String) -> StoreError {
    match code {
        // unique / exclusion violation, serialization failure, deadlock
        "23505" | "23P01" | "40001" | "40P01" => StoreError::Conflict(what),
        // read-only transaction (a standby after failover), completion unknown,
        // lock timeout, an internal server failure
        "25006" | "40003" | "55P03" | "XX000" => StoreError::Unavailable(what),
        _ => match code.get(..2) {
            // data exception (22021: a NUL byte, 22001: too long…); integrity
            // constraints on the input (23514 check, 23502 not null, 23503 FK)
            Some("22" | "23") => StoreError::Invalid(what),
            // connection exception, insufficient resources, operator
            // intervention (shutdown, statement timeout), system error
            Some("08" | "53" | "57" | "58") => StoreError::Unavailable(what),
            Some("40") => StoreError::Conflict(what),
            _ => StoreError::Corrupt(what),
        },
    }
}

/// SQLite, by extended result code (`kind` already names the constraints).
fn by_sqlite_code(code: i32, kind: ErrorKind, what: String) -> StoreError {
    const BUSY_SNAPSHOT: i32 = 517;
    match kind {
        ErrorKind::UniqueViolation => return StoreError::Conflict(what),
        ErrorKind::CheckViolation | ErrorKind::NotNullViolation | ErrorKind::ForeignKeyViolation => {
            return StoreError::Invalid(what);
        }
        _ => {}
    }
    if code == BUSY_SNAPSHOT {
        return StoreError::Conflict(what);
    }
    match code & 0xff {
        // BUSY, LOCKED (past busy_timeout), NOMEM, READONLY, INTERRUPT, IOERR,
        // FULL, CANTOPEN, PROTOCOL
        5 | 6 | 7 | 8 | 9 | 10 | 13 | 14 | 15 => StoreError::Unavailable(what),
        // CONSTRAINT (other), TOOBIG, MISMATCH, RANGE
        19 | 18 | 20 | 25 => StoreError::Invalid(what),
        // CORRUPT, NOTADB, and ERROR (a statement this schema does not fit)
        _ => StoreError::Corrupt(what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(e: &StoreError) -> &'static str {
        match e {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Conflict(_) => "conflict",
            StoreError::Invalid(_) => "invalid",
            StoreError::Corrupt(_) => "corrupt",
        }
    }

    #[test]
    fn sqlstates_by_class() {
        let cases = [
            ("08006", "unavailable"),
            ("57P01", "unavailable"),
            ("57014", "unavailable"),
            ("53300", "unavailable"),
            ("25006", "unavailable"),
            ("23505", "conflict"),
            ("40001", "conflict"),
            ("40P01", "conflict"),
            ("22021", "invalid"),
            ("22001", "invalid"),
            ("23514", "invalid"),
            ("23502", "invalid"),
            ("XX001", "corrupt"),
            ("42P01", "corrupt"),
        ];
        for (code, expected) in cases {
            assert_eq!(variant(&by_sqlstate(code, code.into())), expected, "{code}");
        }
    }

    #[test]
    fn sqlite_codes() {
        let cases = [
            (5, ErrorKind::Other, "unavailable"),
            (14, ErrorKind::Other, "unavailable"),
            (266, ErrorKind::Other, "unavailable"), // IOERR_READ
            (517, ErrorKind::Other, "conflict"),
            (2067, ErrorKind::UniqueViolation, "conflict"),
            (1555, ErrorKind::UniqueViolation, "conflict"),
            (275, ErrorKind::CheckViolation, "invalid"),
            (18, ErrorKind::Other, "invalid"),
            (11, ErrorKind::Other, "corrupt"),
            (1, ErrorKind::Other, "corrupt"),
        ];
        for (code, kind, expected) in cases {
            assert_eq!(variant(&by_sqlite_code(code, kind, code.to_string())), expected, "{code}");
        }
    }

    #[test]
    fn connection_failures_are_unavailable_and_decoding_failures_corrupt() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(variant(&classify(sqlx::Error::Io(io))), "unavailable");
        assert_eq!(variant(&classify(sqlx::Error::PoolTimedOut)), "unavailable");
        assert_eq!(variant(&classify(sqlx::Error::PoolClosed)), "unavailable");
        assert_eq!(variant(&classify(sqlx::Error::RowNotFound)), "corrupt");
        assert_eq!(variant(&classify(sqlx::Error::ColumnNotFound("kind".into()))), "corrupt");
        let decode = sqlx::Error::ColumnDecode { index: "kind".into(), source: "not text".into() };
        assert_eq!(variant(&classify(decode)), "corrupt");
        assert_eq!(variant(&classify(sqlx::Error::Encode("4242424242424242".into()))), "invalid");
        assert!(!classify(sqlx::Error::Encode("4242424242424242".into())).to_string().contains("4242"));
    }
}
