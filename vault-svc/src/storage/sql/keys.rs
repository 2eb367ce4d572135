//! `KeyStore` on SQL: the merchants' wrapped data keys (each insert and
//! re-wrap with its audit event) and the re-encryption runs.
use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::any::AnyRow;

use common::clock::Millis;
use common::database::{classify, column, from_secs, to_secs as secs};

use super::SqlStore;
use crate::domain::audit::AuditEntry;
use crate::domain::store::StoreError;
use crate::domain::store::cards::{KeyPurpose, KeyStore, WrappedKey};

fn wrapped_key(row: &AnyRow) -> Result<WrappedKey, StoreError> {
    Ok(WrappedKey {
        merchant_id: column(row, "merchant_id")?,
        purpose: KeyPurpose::parse(&column::<String>(row, "purpose")?)
            .ok_or_else(|| StoreError::Corrupt("unknown key purpose in data_keys".into()))?,
        version: column::<i64>(row, "version")? as u32,
        kek_version: column::<i64>(row, "kek_version")? as u32,
        wrapped: column(row, "wrapped")?,
        created_at: from_secs(column(row, "created_at")?),
        rotation_id: column(row, "rotation_id")?,
    })
}

const KEY_COLUMNS: &str = "merchant_id, purpose, version, kek_version, wrapped, created_at, rotation_id";

impl KeyStore for SqlStore {
    fn data_keys<'a>(&'a self, merchant_id: &'a str) -> BoxFuture<'a, Result<Vec<WrappedKey>, StoreError>> {
        async move {
            let sql = format!("SELECT {KEY_COLUMNS} FROM data_keys WHERE merchant_id = $1");
            self.find_all(sqlx::query(&sql).bind(merchant_id), wrapped_key).await
        }
        .boxed()
    }

    fn insert_data_key<'a>(
        &'a self,
        k: &'a WrappedKey,
        audit: &'a AuditEntry,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let statement = sqlx::query(
                "INSERT INTO data_keys (merchant_id, purpose, version, kek_version, wrapped, created_at, rotation_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (merchant_id, purpose, version) DO NOTHING",
            )
            .bind(k.merchant_id.as_str())
            .bind(k.purpose.as_str())
            .bind(i64::from(k.version))
            .bind(i64::from(k.kek_version))
            .bind(k.wrapped.as_slice())
            .bind(secs(k.created_at))
            .bind(k.rotation_id);
            self.changed_with_audit(statement, audit).await
        }
        .boxed()
    }

    fn all_data_keys(&self) -> BoxFuture<'_, Result<Vec<WrappedKey>, StoreError>> {
        async move {
            let sql = format!("SELECT {KEY_COLUMNS} FROM data_keys ORDER BY merchant_id, purpose, version");
            self.find_all(sqlx::query(&sql), wrapped_key).await
        }
        .boxed()
    }

    fn rewrap<'a>(
        &'a self,
        k: &'a WrappedKey,
        from_kek: u32,
        audit: &'a AuditEntry,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let statement = sqlx::query(
                "UPDATE data_keys SET kek_version = $4, wrapped = $5 \
                 WHERE merchant_id = $1 AND purpose = $2 AND version = $3 AND kek_version = $6",
            )
            .bind(k.merchant_id.as_str())
            .bind(k.purpose.as_str())
            .bind(i64::from(k.version))
            .bind(i64::from(k.kek_version))
            .bind(k.wrapped.as_slice())
            .bind(i64::from(from_kek));
            self.changed_with_audit(statement, audit).await
        }
        .boxed()
    }

    fn open_rotation(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT id FROM key_rotations WHERE finished_at IS NULL ORDER BY id DESC LIMIT 1",
            )
            .fetch_optional(self.pool())
            .await
            .map_err(classify)
        }
        .boxed()
    }

    fn start_rotation(&self, at: Millis) -> BoxFuture<'_, Result<i64, StoreError>> {
        async move {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO key_rotations (id, started_at) \
                 SELECT COALESCE(MAX(id), 0) + 1, $1 FROM key_rotations RETURNING id",
            )
            .bind(secs(at))
            .fetch_one(self.pool())
            .await
            .map_err(classify)
        }
        .boxed()
    }

    fn finish_rotation(&self, id: i64, at: Millis) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            sqlx::query("UPDATE key_rotations SET finished_at = $2 WHERE id = $1")
                .bind(id)
                .bind(secs(at))
                .execute(self.pool())
                .await
                .map(|_| ())
                .map_err(classify)
        }
        .boxed()
    }
}
