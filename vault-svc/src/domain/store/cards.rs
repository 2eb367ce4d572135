//! The durable store's contract, owned by the domain: card tokens
//! (registration and omni), the merchants' wrapped data keys, and the
//! append-only audit trail. Each method a backend implements is one primitive;
//! a write and its audit event commit together. The hot paths (`insert`,
//! `mark_used`) are a single statement on PostgreSQL. What a write that found
//! no live token answers (`Deleted` or `NotFound`) is the domain's rule, in the
//! provided `use_token`, `delete` and `extend`.
use common::clock::Millis;
use futures::future::BoxFuture;
use vault_api::TokenKind;

use super::{StoreError, StoreFuture};
use crate::domain::audit::{AuditEntry, AuditQuery, AuditRecord};

/// Whose tokens: one merchant in one mode, as the contract scopes every call.
pub use vault_api::Scope;

/// What a durable token holds: a card, or a SEPA bank account (whose
/// retention follows its last use, not an expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Instrument {
    #[default]
    Card,
    Account,
}

impl Instrument {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Account => "account",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "card" => Some(Self::Card),
            "account" => Some(Self::Account),
            _ => None,
        }
    }
}

/// The retention an account's use sets: 14 months from the use, 24 when the
/// token is extended. A card's retention is left as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UseRetention {
    pub until: Millis,
    pub extended_until: Millis,
}

/// A durable token as stored; `meta` and `card` are sealed blobs (`card`
/// holds the bank account for an account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRow {
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub kind: TokenKind,
    pub instrument: Instrument,
    pub customer_id: String,
    pub fingerprint: String,
    pub meta: Vec<u8>,
    pub card: Vec<u8>,
    pub dek_version: u32,
    /// Instants are kept to the second.
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
    pub retain_until: Millis,
    pub extended: bool,
}

/// A token that the retention sweeper must delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueToken {
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub kind: TokenKind,
}

/// A page of a customer's live tokens (of `kind`, or every kind) ordered by
/// id, after `after` (exclusive). The kind is filtered in the query, before
/// the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenQuery<'a> {
    pub scope: Scope<'a>,
    pub customer_id: &'a str,
    pub kind: Option<TokenKind>,
    pub after: &'a str,
    pub limit: u32,
}

/// A write on one scoped token and the audit event that commits with it.
#[derive(Debug, Clone, Copy)]
pub struct TokenWrite<'a> {
    pub scope: Scope<'a>,
    pub id: &'a str,
    pub audit: &'a AuditEntry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    /// The id existed and was deleted (its card data is gone).
    Deleted,
    NotFound,
}

/// Where durable tokens and their audit trail live. A backend implements the
/// primitives; `list`, `use_token`, `delete` and `extend` are provided.
pub trait CardStore: Send + Sync + 'static {
    /// Inserts a new token and its audit event: `Some(true)` when it is the
    /// customer's first live token of its kind (ranked its default),
    /// `Some(false)` beside others; `None` (nothing written) when the scope
    /// already holds the same card for the same customer and kind.
    fn insert(&self, row: &CardRow, consumer_ref: Option<&str>, audit: &AuditEntry) -> impl StoreFuture<Option<bool>>;

    /// The live token holding this card for this customer and kind.
    fn find_same_card(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        customer_id: &str,
        fingerprint: &str,
    ) -> impl StoreFuture<Option<CardRow>>;

    /// The live token a previous call with this `consumer_ref` created.
    fn find_by_consumer(&self, scope: Scope<'_>, consumer_ref: &str) -> impl StoreFuture<Option<CardRow>>;

    /// Replaces a live token's sealed data (new expiry or holder) and retention,
    /// keeping `extended`; writes the audit event. `None` if it is gone.
    fn refresh(
        &self,
        row: &CardRow,
        retain_until_extended: Millis,
        audit: &AuditEntry,
    ) -> impl StoreFuture<Option<CardRow>>;

    /// Marks the live token used at `now`, if its retention has not ended
    /// (and, with `only`, if it holds that instrument), and returns it, with
    /// its DT audit event in the same commit; an account's retention moves to
    /// `retention` in the same statement.
    fn mark_used(
        &self,
        write: TokenWrite<'_>,
        now: Millis,
        retention: UseRetention,
        only: Option<Instrument>,
    ) -> impl StoreFuture<Option<CardRow>>;

    fn get(&self, scope: Scope<'_>, id: &str) -> impl StoreFuture<Lookup<CardRow>>;

    /// The page of tokens `query` asks for.
    fn tokens(&self, query: TokenQuery<'_>) -> impl StoreFuture<Vec<CardRow>>;

    /// The customer's default registration at `now`: of the live ones whose
    /// retention has not ended, the one made default last, else the first
    /// inserted (while it lives), else the first created.
    fn default_registration(
        &self,
        scope: Scope<'_>,
        customer_id: &str,
        now: Millis,
    ) -> impl StoreFuture<Option<CardRow>>;

    /// Makes a live registration with a customer that customer's default, with
    /// its audit event; `None` if there is no such registration.
    fn mark_default(&self, write: TokenWrite<'_>) -> impl StoreFuture<Option<CardRow>>;

    /// Destroys a live token's sealed data and marks it deleted at `now`, with
    /// its audit event; `false` if there is no live token.
    fn mark_deleted(&self, write: TokenWrite<'_>, now: Millis) -> impl StoreFuture<bool>;

    /// Sets a live token's `extended` and extended retention, with its audit event.
    fn mark_extended(&self, write: TokenWrite<'_>, retain_until: Millis) -> impl StoreFuture<Option<CardRow>>;

    /// Live tokens whose retention ended at or before `now`.
    fn due(&self, now: Millis, limit: u32) -> impl StoreFuture<Vec<DueToken>>;

    /// Live tokens of a merchant sealed under a data-key version below `version`.
    fn sealed_below(&self, merchant_id: &str, version: u32, limit: u32) -> impl StoreFuture<Vec<CardRow>>;

    /// Swaps a token's sealed data for a re-encryption, only if it is still at
    /// `row.dek_version`; `false` if it changed meanwhile.
    fn reseal(&self, row: &CardRow, meta: &[u8], card: &[u8], version: u32) -> impl StoreFuture<bool>;

    fn record(&self, audit: &AuditEntry) -> impl StoreFuture<()>;

    fn audit_events(&self, query: AuditQuery<'_>) -> impl StoreFuture<Vec<AuditRecord>>;

    /// [`tokens`](Self::tokens) with the query spelled out.
    fn list(
        &self,
        scope: Scope<'_>,
        customer_id: &str,
        kind: Option<TokenKind>,
        after: &str,
        limit: u32,
    ) -> impl StoreFuture<Vec<CardRow>> {
        async move { self.tokens(TokenQuery { scope, customer_id, kind, after, limit }).await }
    }

    /// [`mark_used`](Self::mark_used), or why not: a token past retention but
    /// not yet swept answers `Deleted`; one holding another instrument than
    /// `only` answers `Found` unused (the caller tells by its instrument).
    fn use_token(
        &self,
        scope: Scope<'_>,
        id: &str,
        now: Millis,
        retention: UseRetention,
        only: Option<Instrument>,
        audit: &AuditEntry,
    ) -> impl StoreFuture<Lookup<CardRow>> {
        async move {
            if let Some(used) = self.mark_used(TokenWrite { scope, id, audit }, now, retention, only).await? {
                return Ok(Lookup::Found(used));
            }
            // Why not, in one lookup: live but holding the other instrument
            // is handed back unused; otherwise as `answer` says.
            Ok(match self.get(scope, id).await? {
                Lookup::Found(row) if only.is_some_and(|i| i != row.instrument) && row.retain_until > now => {
                    Lookup::Found(row)
                }
                Lookup::NotFound => Lookup::NotFound,
                Lookup::Found(_) | Lookup::Deleted => Lookup::Deleted,
            })
        }
    }

    /// [`mark_deleted`](Self::mark_deleted): `Found` when this call deleted
    /// the token, `Deleted` when it already was.
    fn delete(&self, scope: Scope<'_>, id: &str, now: Millis, audit: &AuditEntry) -> impl StoreFuture<Lookup<()>> {
        async move {
            let deleted = self.mark_deleted(TokenWrite { scope, id, audit }, now).await?;
            answer(self, scope, id, deleted.then_some(())).await
        }
    }

    /// [`mark_extended`](Self::mark_extended), or why not.
    fn extend(
        &self,
        scope: Scope<'_>,
        id: &str,
        retain_until: Millis,
        audit: &AuditEntry,
    ) -> impl StoreFuture<Lookup<CardRow>> {
        async move {
            let extended = self.mark_extended(TokenWrite { scope, id, audit }, retain_until).await?;
            answer(self, scope, id, extended).await
        }
    }
}

/// What a write on token `id` answers: what it `wrote`, or, if it found no
/// live token, `Deleted` when the id exists (deleted, or past retention and not
/// yet swept) and `NotFound` when it does not.
async fn answer<C: CardStore + ?Sized, T>(
    store: &C,
    scope: Scope<'_>,
    id: &str,
    wrote: Option<T>,
) -> Result<Lookup<T>, StoreError> {
    if let Some(written) = wrote {
        return Ok(Lookup::Found(written));
    }
    Ok(match store.get(scope, id).await? {
        Lookup::NotFound => Lookup::NotFound,
        Lookup::Found(_) | Lookup::Deleted => Lookup::Deleted,
    })
}

/// A merchant's data key as stored: sealed under a KEK version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub merchant_id: String,
    pub purpose: KeyPurpose,
    pub version: u32,
    pub kek_version: u32,
    pub wrapped: Vec<u8>,
    pub created_at: Millis,
    /// The re-encryption run that created this version, if any.
    pub rotation_id: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPurpose {
    /// Encrypts records; rotated by re-encryption.
    Data,
    /// Keys card fingerprints; one version for ever, so fingerprints stay stable.
    Fingerprint,
}

impl KeyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Fingerprint => "fingerprint",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "data" => Some(Self::Data),
            "fingerprint" => Some(Self::Fingerprint),
            _ => None,
        }
    }
}

/// Where wrapped data keys live. Object-safe: the key ring holds it as `dyn`
/// and calls it only on a cache miss or a key operation.
pub trait KeyStore: Send + Sync + 'static {
    fn data_keys<'a>(&'a self, merchant_id: &'a str) -> BoxFuture<'a, Result<Vec<WrappedKey>, StoreError>>;
    /// `false` if that (merchant, purpose, version) exists already.
    fn insert_data_key<'a>(
        &'a self,
        key: &'a WrappedKey,
        audit: &'a AuditEntry,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn all_data_keys(&self) -> BoxFuture<'_, Result<Vec<WrappedKey>, StoreError>>;
    /// Replaces the wrapping of `key` if it is still wrapped under `from_kek`.
    fn rewrap<'a>(
        &'a self,
        key: &'a WrappedKey,
        from_kek: u32,
        audit: &'a AuditEntry,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// The unfinished re-encryption run, if any.
    fn open_rotation(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>>;
    /// Starts a re-encryption run and returns its id.
    fn start_rotation(&self, at: Millis) -> BoxFuture<'_, Result<i64, StoreError>>;
    fn finish_rotation(&self, id: i64, at: Millis) -> BoxFuture<'_, Result<(), StoreError>>;
}
