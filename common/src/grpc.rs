//! gRPC conventions both services follow: errors as a status with a
//! `google.rpc.ErrorInfo` (domain `payvault`), and the caller's deadline.
use std::time::Duration;

use tonic::metadata::MetadataMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::reason::Reason;

pub const ERROR_DOMAIN: &str = "payvault";

/// A status carrying `ErrorInfo{reason, domain: "payvault"}`. `message` must be
/// a fixed text: never echo request data into it.
pub fn error_status(code: Code, reason: Reason, message: impl Into<String>) -> Status {
    field_error_status(code, reason, message, None)
}

/// `error_status`, plus a `BadRequest` field violation naming `field` (e.g.
/// `card.country`) when the fault is one field's, as tonic's richer-error
/// example does; the description is the same fixed text.
pub fn field_error_status(code: Code, reason: Reason, message: impl Into<String>, field: Option<&str>) -> Status {
    let message = message.into();
    let mut details = ErrorDetails::with_error_info(
        reason.as_str(),
        ERROR_DOMAIN,
        std::collections::HashMap::<String, String>::new(),
    );
    if let Some(field) = field {
        details.add_bad_request_violation(field, message.clone());
    }
    Status::with_error_details(code, message, details)
}

/// A service's domain error, as `failure` reads it.
pub trait DomainError: std::fmt::Display {
    /// The store failure behind it, if any: the client is told its fixed
    /// `public_text`, and its cause (the driver's text) is logged.
    fn store_error(&self) -> Option<&crate::store::StoreError>;

    /// The one request field at fault, if the error is about one.
    fn field(&self) -> Option<&'static str> {
        None
    }
}

/// The status a request that failed with `error` answers: `error_status`
/// with a fixed text of ours (and the field at fault, if any), the cause
/// logged once when the fault is the server's (`UNAVAILABLE`, `INTERNAL`) or
/// the store's.
pub fn failure(code: Code, reason: Reason, error: &impl DomainError) -> Status {
    let store = error.store_error();
    if store.is_some() || matches!(code, Code::Unavailable | Code::Internal) {
        tracing::error!(%error, reason = reason.as_str(), "request failed");
    }
    let message = store.map_or_else(|| error.to_string(), |s| s.public_text().to_owned());
    field_error_status(code, reason, message, error.field())
}

/// The field a status's `BadRequest` names, if it names one.
pub fn error_field(status: &Status) -> Option<String> {
    let details = status.get_error_details();
    details.bad_request()?.field_violations.first().map(|v| v.field.clone())
}

/// The `ErrorInfo` reason text of a status, if it has one.
pub fn error_reason(status: &Status) -> Option<String> {
    status.get_error_details().error_info().map(|info| info.reason.clone())
}

/// The payvault reason of a status: `None` if it has no `ErrorInfo` of domain
/// `payvault` or names a reason payvault does not send.
pub fn reason(status: &Status) -> Option<Reason> {
    let details = status.get_error_details();
    let info = details.error_info()?;
    (info.domain == ERROR_DOMAIN).then(|| Reason::parse(&info.reason)).flatten()
}

/// The time left before the caller's `grpc-timeout`, capped at `max`.
pub fn deadline(metadata: &MetadataMap, max: Duration) -> Duration {
    deadline_in(|name| metadata.get(name).and_then(|v| v.to_str().ok()), max)
}

/// The caller's correlation id for logs and audit: `x-correlation-id`, else
/// `x-request-id`, else the trace id of `traceparent`; at most 128 characters,
/// never anything shaped like a card number.
pub fn correlation_id(metadata: &MetadataMap) -> String {
    correlation_id_in(|name| metadata.get(name).and_then(|v| v.to_str().ok()))
}

/// `deadline` over raw HTTP headers (for tower layers, before tonic decodes).
pub fn header_deadline(headers: &http::HeaderMap, max: Duration) -> Duration {
    deadline_in(|name| headers.get(name).and_then(|v| v.to_str().ok()), max)
}

/// `correlation_id` over raw HTTP headers.
pub fn header_correlation_id(headers: &http::HeaderMap) -> String {
    correlation_id_in(|name| headers.get(name).and_then(|v| v.to_str().ok()))
}

fn deadline_in<'a>(header: impl Fn(&str) -> Option<&'a str>, max: Duration) -> Duration {
    header("grpc-timeout").and_then(parse_grpc_timeout).map_or(max, |d| d.min(max))
}

fn correlation_id_in<'a>(header: impl Fn(&str) -> Option<&'a str>) -> String {
    let header = |name| header(name).filter(|v| !v.is_empty());
    let id = header("x-correlation-id")
        .or_else(|| header("x-request-id"))
        .or_else(|| header("traceparent").and_then(|t| t.split('-').nth(1)))
        .unwrap_or_default();
    let id: String = id.chars().take(128).collect();
    crate::card::loggable(&id).to_owned()
}

/// Parses the `grpc-timeout` header (`<digits><unit>`, unit one of H M S m u n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_status_carries_the_reason() {
        let status = error_status(Code::FailedPrecondition, Reason::UsedToken, "the token was already used");
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(error_reason(&status).as_deref(), Some("used_token"));
        assert_eq!(reason(&status), Some(Reason::UsedToken));
        assert_eq!(reason(&Status::unavailable("no details")), None);
        assert_eq!(error_field(&status), None);
        let field = field_error_status(Code::InvalidArgument, Reason::InvalidCountry, "no", Some("card.country"));
        assert_eq!(
            (reason(&field), error_field(&field).as_deref()),
            (Some(Reason::InvalidCountry), Some("card.country"))
        );
    }

    #[test]
    fn deadline_comes_from_grpc_timeout_and_is_capped() {
        let mut md = MetadataMap::new();
        let max = Duration::from_secs(5);
        assert_eq!(deadline(&md, max), max);
        md.insert("grpc-timeout", "250m".parse().unwrap());
        assert_eq!(deadline(&md, max), Duration::from_millis(250));
        md.insert("grpc-timeout", "1H".parse().unwrap());
        assert_eq!(deadline(&md, max), max);
    }
}
