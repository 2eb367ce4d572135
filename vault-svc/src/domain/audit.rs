//! The audit trail's vocabulary: who acted (`Actor`, one for token and key
//! operations alike), the event a write commits with (`AuditEntry`, built only
//! by `AuditEntry::new`), and how events are read back. Events never hold card
//! data: ids, event codes, the actor and the correlation id only.
use common::clock::Millis;

/// Who asks: the mTLS identity (or the job) and the request's correlation id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub correlation_id: String,
}

impl Actor {
    /// A job or the service itself, outside any request.
    pub fn system(name: &str) -> Self {
        Self { name: name.into(), correlation_id: String::new() }
    }
}

/// One audit event (never card data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: Millis,
    pub event_type: &'static str,
    pub merchant_id: String,
    pub token_id: String,
    pub actor: String,
    pub correlation_id: String,
    pub outcome: String,
}

impl AuditEntry {
    pub fn new(
        at: Millis,
        event_type: &'static str,
        merchant_id: &str,
        token_id: &str,
        actor: &Actor,
        outcome: &str,
    ) -> Self {
        Self {
            at,
            event_type,
            merchant_id: merchant_id.into(),
            token_id: token_id.into(),
            actor: actor.name.clone(),
            correlation_id: actor.correlation_id.clone(),
            outcome: outcome.into(),
        }
    }
}

/// An audit event as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: Millis,
    pub event_type: String,
    pub merchant_id: String,
    pub token_id: String,
    pub actor: String,
    pub correlation_id: String,
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery<'a> {
    pub merchant_id: &'a str,
    pub token_id: Option<&'a str>,
    pub from: Millis,
    pub to: Millis,
    pub after_id: i64,
    pub limit: u32,
}
