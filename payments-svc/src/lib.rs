//! payments-svc: pre-authorizations, debits, captures, reversals and refunds
//! over vault tokens. It never stores a card number: it asks the vault for the
//! card only at the moment it calls the acquirer, through the `vault-api`
//! crate's `Vault` port.

pub mod acquirer;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod startup;
pub mod storage;
