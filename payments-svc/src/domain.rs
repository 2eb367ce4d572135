//! Payments' rules, free of transport and storage types: the payment record
//! and its state machine, validation, idempotency, and the flows that tie the
//! vault and the acquirer together.

pub mod error;
pub mod flows;
pub mod idempotency;
pub mod ledger;
pub mod payment;
pub mod reconcile;
pub mod references;
pub mod store;

pub use error::{PaymentError, PaymentResult};
