//! vault-svc: the cardholder-data environment. It tokenizes card data, keeps it
//! encrypted, and hands it back only to authenticated platform services.

pub mod config;
pub mod crypto;
pub mod dev;
pub mod domain;
pub mod grpc;
pub mod startup;
pub mod storage;
