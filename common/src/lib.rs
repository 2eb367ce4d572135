//! Shared building blocks of the payvault services: card validation, merchant
//! authentication, the clock, configuration, telemetry, the `ErrorInfo` reasons,
//! gRPC status helpers and the one server shell (`server`).

pub mod auth;
pub mod bank;
pub mod card;
pub mod clock;
pub mod config;
pub mod database;
pub mod deadline;
pub mod field;
pub mod grpc;
pub mod ids;
pub mod keys;
pub mod lifecycle;
pub mod metrics;
pub mod money;
pub mod reason;
pub mod result_code;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod text;
