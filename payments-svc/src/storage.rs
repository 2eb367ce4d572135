//! Adapters of payments' store port (`domain::store::PaymentStore`): `sql`,
//! on PostgreSQL or the embedded SQLite.

pub mod sql;
