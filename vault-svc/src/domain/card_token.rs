//! Durable card tokens: registrations (OPP) and omni tokens (Till). Created
//! from card data or by consuming a single-use token; the same card for the
//! same merchant, customer and kind returns the existing token (its expiry and
//! holder refreshed); every use, deletion and extension is audited; the
//! security code is never stored. A registration may hold a SEPA bank account
//! instead (OPP's non-card registration): validated (`common::bank`), sealed
//! under its own AAD kinds, de-duplicated by a keyed fingerprint of the
//! normalized IBAN, and retained by last use (`retention`).
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use common::bank::{BankAccount, BankAccountInput};
use common::card::{Card, CardInput};
use common::clock::{Millis, SharedClock};
use common::field::FieldFault;
use vault_api::TokenSource;
use vault_api::token_id::{self, TokenKind, TokenRef};

use super::account_meta::AccountMeta;
use super::audit::{Actor, AuditEntry, AuditQuery, AuditRecord};
use super::card_meta::CardMeta;
use super::error::VaultError;
use super::retention::{self, account_retain_until, retain_until};
use super::single_use::{Detokenized, SingleUseTokens};
use super::store::TokenStore;
use super::store::cards::{CardRow, CardStore, Instrument, Lookup, Scope, TokenWrite};
use crate::crypto::{Aad, KeyRing};

/// A durable token as its merchant may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredView {
    pub id: String,
    pub kind: TokenKind,
    pub merchant_id: String,
    pub customer_id: String,
    pub livemode: bool,
    /// Empty (default) for a bank account.
    pub card: CardMeta,
    /// A bank account's metadata.
    pub account: Option<AccountMeta>,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
    pub retain_until: Millis,
    pub extended: bool,
    /// A registration that is its customer's default.
    pub is_default: bool,
}

pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

const MAX_PAGE: u32 = 100;
const DEFAULT_PAGE: u32 = 20;

/// The sealed card of a durable token: everything but the security code.
#[derive(Serialize, Deserialize)]
struct StoredCard {
    card: Card,
}

/// What a new row seals: which instrument, the AAD part of its ciphertext,
/// its fingerprint, and when it is made.
struct Sealed {
    instrument: Instrument,
    part: &'static str,
    fingerprint: String,
    created_at: Millis,
}

/// The sealed bank account of a registration.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    account: BankAccount,
}

/// What a durable token gives back in clear: its card, or its bank account.
pub enum Released {
    Card(Box<Detokenized>),
    Account(Box<ReleasedAccount>),
}

/// A registration's bank account in clear, with what may be shown of it.
pub struct ReleasedAccount {
    pub account: BankAccount,
    pub meta: AccountMeta,
    pub livemode: bool,
}

/// The AAD of a token's sealed `part` ("meta" or the card/account itself):
/// an account's kinds differ from a card's, so neither opens as the other.
pub(crate) fn aad<'a>(
    merchant_id: &'a str,
    id: &'a str,
    kind: TokenKind,
    instrument: Instrument,
    part: &'static str,
) -> Aad<'a> {
    let kind = match (kind, instrument, part) {
        (TokenKind::Registration, Instrument::Account, "meta") => "registration_account_meta",
        (TokenKind::Registration, Instrument::Account, _) => "registration_account",
        (TokenKind::Registration, Instrument::Card, "meta") => "registration_meta",
        (TokenKind::Registration, Instrument::Card, _) => "registration_card",
        (TokenKind::Omni, Instrument::Account, "meta") => "omni_account_meta",
        (TokenKind::Omni, Instrument::Account, _) => "omni_account",
        (TokenKind::Omni, Instrument::Card, "meta") => "omni_meta",
        (TokenKind::Omni, Instrument::Card, _) => "omni_card",
    };
    Aad { merchant_id, token_id: id, kind }
}

/// A caller's reference (`field`, `common::field`'s rules): `malformed` when
/// too long or holding control characters.
pub(crate) fn check_ref(value: &str, field: &'static str, malformed: &'static str) -> Result<(), VaultError> {
    common::field::check(value).map_err(|fault| match fault {
        FieldFault::Malformed => VaultError::InvalidArgument(malformed),
        FieldFault::CardNumber => VaultError::CardNumberInText(field),
    })
}

fn page_limit(requested: i32) -> u32 {
    match requested {
        n if n <= 0 => DEFAULT_PAGE,
        n => (n as u32).min(MAX_PAGE),
    }
}

impl<T> Page<T> {
    /// A page of at most `limit` items; a full one names its last item's
    /// `key` as the token of the next page.
    fn of(items: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Self {
        let next_page_token = match items.last() {
            Some(last) if items.len() == limit as usize => key(last),
            _ => String::new(),
        };
        Self { items, next_page_token }
    }
}

pub struct CardTokens<C, S> {
    store: Arc<C>,
    single_use: Arc<SingleUseTokens<S>>,
    keys: Arc<KeyRing>,
    clock: SharedClock,
}

impl<C: CardStore, S: TokenStore> CardTokens<C, S> {
    pub fn new(store: Arc<C>, single_use: Arc<SingleUseTokens<S>>, keys: Arc<KeyRing>, clock: SharedClock) -> Self {
        Self { store, single_use, keys, clock }
    }

    pub fn store(&self) -> &C {
        &self.store
    }

    pub fn single_use(&self) -> &SingleUseTokens<S> {
        &self.single_use
    }

    fn audit(&self, event_type: &'static str, merchant_id: &str, id: &str, actor: &Actor, outcome: &str) -> AuditEntry {
        AuditEntry::new(self.clock.now_ms(), event_type, merchant_id, id, actor, outcome)
    }

    async fn view(&self, row: CardRow) -> Result<StoredView, VaultError> {
        let meta = self.keys.open(aad(&row.merchant_id, &row.id, row.kind, row.instrument, "meta"), &row.meta).await?;
        let (card, account) = match row.instrument {
            Instrument::Card => (serde_json::from_slice(&meta).map_err(|_| VaultError::Corrupt)?, None),
            Instrument::Account => {
                (CardMeta::default(), Some(serde_json::from_slice(&meta).map_err(|_| VaultError::Corrupt)?))
            }
        };
        Ok(StoredView {
            id: row.id,
            kind: row.kind,
            merchant_id: row.merchant_id,
            customer_id: row.customer_id,
            livemode: row.livemode,
            card,
            account,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            retain_until: row.retain_until,
            extended: row.extended,
            is_default: false,
        })
    }

    /// `view`, and for a registration whether it is its customer's default
    /// (one more query: what tokenize and describe answer, not detokenize).
    async fn view_with_default(&self, scope: Scope<'_>, row: CardRow) -> Result<StoredView, VaultError> {
        let mut view = self.view(row).await?;
        if view.kind == TokenKind::Registration {
            view.is_default = self.default_id(scope, &view.customer_id).await?.as_deref() == Some(view.id.as_str());
        }
        Ok(view)
    }

    /// The view of a token just inserted: one inserted first of its
    /// customer's registrations is their default without asking the store
    /// again; one inserted beside others is looked up as any other.
    async fn view_of_new(&self, scope: Scope<'_>, row: CardRow, first: bool) -> Result<StoredView, VaultError> {
        if first && row.kind == TokenKind::Registration && !row.customer_id.is_empty() {
            let mut view = self.view(row).await?;
            view.is_default = true;
            return Ok(view);
        }
        self.view_with_default(scope, row).await
    }

    /// The id of the customer's default registration, if the customer has one.
    async fn default_id(&self, scope: Scope<'_>, customer_id: &str) -> Result<Option<String>, VaultError> {
        if customer_id.is_empty() {
            return Ok(None);
        }
        let found = self.store.default_registration(scope, customer_id, self.clock.now_ms()).await?;
        Ok(found.map(|row| row.id))
    }

    /// Seals `card` for token `id` and returns the row to store.
    async fn sealed_row(
        &self,
        scope: Scope<'_>,
        id: String,
        kind: TokenKind,
        customer_id: &str,
        card: &Card,
    ) -> Result<CardRow, VaultError> {
        let fingerprint = self.keys.fingerprint(scope.merchant_id, card.number.expose()).await?;
        let meta = CardMeta::of(card, fingerprint.clone());
        let stored = StoredCard { card: Card { security_code: None, ..card.clone() } };
        let sealed =
            Sealed { instrument: Instrument::Card, part: "card", fingerprint, created_at: self.clock.now_ms() };
        self.seal_row(scope, id, kind, customer_id, sealed, &meta, &stored, retain_until(card.expiry, false)).await
    }

    /// Seals `account` for registration `id` and returns the row to store:
    /// retained 14 months from now (its creation is its first use).
    async fn sealed_account_row(
        &self,
        scope: Scope<'_>,
        id: String,
        customer_id: &str,
        account: &BankAccount,
    ) -> Result<CardRow, VaultError> {
        // Domain-separated from card fingerprints under the same key.
        let keyed = Zeroizing::new(format!("iban:{}", account.iban.expose()));
        let fingerprint = self.keys.fingerprint(scope.merchant_id, &keyed).await?;
        let meta = AccountMeta::of(account, fingerprint.clone());
        let stored = StoredAccount { account: account.clone() };
        let now = self.clock.now_ms();
        let sealed = Sealed { instrument: Instrument::Account, part: "account", fingerprint, created_at: now };
        let retain = account_retain_until(now, false);
        self.seal_row(scope, id, TokenKind::Registration, customer_id, sealed, &meta, &stored, retain).await
    }

    /// The row of a new durable token: its metadata and its card or account
    /// sealed under AADs naming the instrument (`meta`, and `sealed.part`).
    #[allow(clippy::too_many_arguments)]
    async fn seal_row(
        &self,
        scope: Scope<'_>,
        id: String,
        kind: TokenKind,
        customer_id: &str,
        sealed: Sealed,
        meta: &impl Serialize,
        stored: &impl Serialize,
        retain_until: Millis,
    ) -> Result<CardRow, VaultError> {
        let meta = Zeroizing::new(serde_json::to_vec(meta).map_err(|_| VaultError::Corrupt)?);
        let plain = Zeroizing::new(serde_json::to_vec(stored).map_err(|_| VaultError::Corrupt)?);
        let row_aad = |part| aad(scope.merchant_id, &id, kind, sealed.instrument, part);
        let (meta, dek_version) = self.keys.seal(row_aad("meta"), &meta).await?;
        let (card, _) = self.keys.seal(row_aad(sealed.part), &plain).await?;
        Ok(CardRow {
            id,
            merchant_id: scope.merchant_id.into(),
            livemode: scope.livemode,
            kind,
            instrument: sealed.instrument,
            customer_id: customer_id.into(),
            fingerprint: sealed.fingerprint,
            meta,
            card,
            dek_version,
            created_at: sealed.created_at,
            last_used_at: None,
            retain_until,
            extended: false,
        })
    }

    /// A bank account as a registration: the same IBAN for the same customer
    /// returns the existing registration (holder and BIC refreshed).
    async fn tokenize_account(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        input: &BankAccountInput,
        customer_id: &str,
        consumer_ref: &str,
        actor: &Actor,
    ) -> Result<StoredView, VaultError> {
        if kind != TokenKind::Registration {
            return Err(VaultError::InvalidArgument("a bank account can only be stored as a registration"));
        }
        let account = BankAccount::validate(input)?;
        let consumer = match consumer_ref {
            "" => None,
            reference => self.keys.reference(scope.merchant_id, reference).await?,
        };
        if let Some(consumer) = consumer.as_deref()
            && let Some(done) = self.store.find_by_consumer(scope, consumer).await?
        {
            return self.view_with_default(scope, done).await;
        }
        for _ in 0..3 {
            let row = self.sealed_account_row(scope, kind.new_id(scope.livemode), customer_id, &account).await?;
            let audit = self.audit(kind.created_event(), scope.merchant_id, &row.id, actor, "created");
            if let Some(first) = self.store.insert(&row, consumer.as_deref(), &audit).await? {
                return self.view_of_new(scope, row, first).await;
            }
            let Some(existing) = self.store.find_same_card(scope, kind, customer_id, &row.fingerprint).await? else {
                continue;
            };
            let row = self.sealed_account_row(scope, existing.id, customer_id, &account).await?;
            let audit = self.audit(kind.created_event(), scope.merchant_id, &row.id, actor, "existing");
            let extended = account_retain_until(self.clock.now_ms(), true);
            if let Some(updated) = self.store.refresh(&row, extended, &audit).await? {
                return self.view_with_default(scope, updated).await;
            }
        }
        Err(VaultError::Conflict)
    }

    pub async fn tokenize(
        &self,
        scope: Scope<'_>,
        kind: TokenKind,
        source: TokenSource<'_, CardInput, BankAccountInput>,
        customer_id: &str,
        consumer_ref: &str,
        actor: &Actor,
    ) -> Result<StoredView, VaultError> {
        check_ref(customer_id, "customer_id", "customer_id must be at most 255 characters of text")?;
        check_ref(consumer_ref, "consumer_ref", "consumer_ref must be at most 255 characters of text")?;
        let card = match source {
            TokenSource::Account(input) => {
                return self.tokenize_account(scope, kind, input, customer_id, consumer_ref, actor).await;
            }
            TokenSource::Card(input) => Card::validate(input, self.clock.now_ms())?,
            TokenSource::SingleUse(token) => match self.consume(scope, token, consumer_ref).await {
                Ok(d) => d.card,
                Err(VaultError::UsedToken) if !consumer_ref.is_empty() => {
                    // A retry of a call that already consumed the token.
                    let Some(consumer) = self.keys.reference(scope.merchant_id, consumer_ref).await? else {
                        return Err(VaultError::UsedToken);
                    };
                    let done = self.store.find_by_consumer(scope, &consumer).await?;
                    return self.view(done.ok_or(VaultError::UsedToken)?).await;
                }
                Err(e) => return Err(e),
            },
        };
        for _ in 0..3 {
            let row = self.sealed_row(scope, kind.new_id(scope.livemode), kind, customer_id, &card).await?;
            // Stored keyed, as the single-use store keeps it (the sealing
            // gave the merchant its keys).
            let consumer = match consumer_ref {
                "" => None,
                reference => self.keys.reference(scope.merchant_id, reference).await?,
            };
            let consumer = consumer.as_deref();
            let audit = self.audit(kind.created_event(), scope.merchant_id, &row.id, actor, "created");
            if let Some(first) = self.store.insert(&row, consumer, &audit).await? {
                return self.view_of_new(scope, row, first).await;
            }
            // The same card is on file: refresh its expiry and holder under its own id.
            let Some(existing) = self.store.find_same_card(scope, kind, customer_id, &row.fingerprint).await? else {
                continue; // deleted meanwhile: insert again
            };
            let row = self.sealed_row(scope, existing.id, kind, customer_id, &card).await?;
            let audit = self.audit(kind.created_event(), scope.merchant_id, &row.id, actor, "existing");
            if let Some(updated) = self.store.refresh(&row, retain_until(card.expiry, true), &audit).await? {
                return self.view_with_default(scope, updated).await;
            }
        }
        Err(VaultError::Conflict)
    }

    async fn consume(&self, scope: Scope<'_>, token: &str, consumer_ref: &str) -> Result<Detokenized, VaultError> {
        if token_id::single_use_livemode(token) != Some(scope.livemode) {
            return Err(VaultError::TokenNotFound);
        }
        let consumer =
            if consumer_ref.is_empty() { format!("tokenize_{}", common::ids::hex(8)) } else { consumer_ref.into() };
        self.single_use.detokenize(scope.merchant_id, token, &consumer).await
    }

    /// The card behind any token: single-use (consumed), registration or omni
    /// (DT audited); or a registration's bank account (DT audited, its
    /// retention moved to 14 months from now in the same statement).
    pub async fn detokenize(
        &self,
        scope: Scope<'_>,
        id: &str,
        consumer_ref: &str,
        only: Option<Instrument>,
        actor: &Actor,
    ) -> Result<Released, VaultError> {
        let kind = match token_id::classify(id) {
            // A single-use token holds a card.
            Some(TokenRef::SingleUse { .. }) if only == Some(Instrument::Account) => {
                return Err(VaultError::InstrumentMismatch);
            }
            Some(TokenRef::SingleUse { livemode }) if livemode == scope.livemode => {
                let card = self.single_use.detokenize(scope.merchant_id, id, consumer_ref).await?;
                return Ok(Released::Card(Box::new(card)));
            }
            Some(TokenRef::SingleUse { .. }) => return Err(VaultError::TokenNotFound),
            Some(TokenRef::Durable(kind)) => kind,
            None => return Err(VaultError::NotFound),
        };
        let now = self.clock.now_ms();
        let audit = self.audit("DT", scope.merchant_id, id, actor, "success");
        let row = match self.store.use_token(scope, id, now, retention::on_use(now), only, &audit).await? {
            // Left unused: no DT event, no retention moved.
            Lookup::Found(row) if row.kind == kind && only.is_some_and(|i| i != row.instrument) => {
                return Err(VaultError::InstrumentMismatch);
            }
            Lookup::Found(row) if row.kind == kind && row.retain_until > now => row,
            Lookup::Found(row) if row.kind == kind => return Err(VaultError::TokenDeleted),
            Lookup::Deleted => return Err(VaultError::TokenDeleted),
            _ => return Err(VaultError::NotFound),
        };
        let plain = self.keys.open(aad(&row.merchant_id, &row.id, row.kind, row.instrument, "card"), &row.card).await?;
        let instrument = row.instrument;
        let view = self.view(row).await?;
        match (instrument, view.account) {
            (Instrument::Account, Some(meta)) => {
                let stored: StoredAccount = serde_json::from_slice(&plain).map_err(|_| VaultError::Corrupt)?;
                let released = ReleasedAccount { account: stored.account, meta, livemode: view.livemode };
                Ok(Released::Account(Box::new(released)))
            }
            (Instrument::Account, None) => Err(VaultError::Corrupt),
            (Instrument::Card, _) => {
                let stored: StoredCard = serde_json::from_slice(&plain).map_err(|_| VaultError::Corrupt)?;
                let card = Detokenized { card: stored.card, meta: view.card, livemode: view.livemode };
                Ok(Released::Card(Box::new(card)))
            }
        }
    }

    async fn found(&self, scope: Scope<'_>, id: &str) -> Result<CardRow, VaultError> {
        if !matches!(token_id::classify(id), Some(TokenRef::Durable(_))) {
            return Err(VaultError::NotFound);
        }
        match self.store.get(scope, id).await? {
            Lookup::Found(row) => Ok(row),
            Lookup::Deleted => Err(VaultError::TokenDeleted),
            Lookup::NotFound => Err(VaultError::NotFound),
        }
    }

    pub async fn describe(&self, scope: Scope<'_>, id: &str) -> Result<StoredView, VaultError> {
        let row = self.found(scope, id).await?;
        self.view_with_default(scope, row).await
    }

    /// The registration a payment by `customer_id` alone uses: the one made
    /// default last, else the customer's first; `NotFound` without one.
    pub async fn describe_default(&self, scope: Scope<'_>, customer_id: &str) -> Result<StoredView, VaultError> {
        check_ref(customer_id, "customer_id", "customer_id must be at most 255 characters of text")?;
        if customer_id.is_empty() {
            return Err(VaultError::InvalidArgument("an id or a customer_id is required"));
        }
        let row = self.store.default_registration(scope, customer_id, self.clock.now_ms()).await?;
        let mut view = self.view(row.ok_or(VaultError::NotFound)?).await?;
        view.is_default = true;
        Ok(view)
    }

    /// Makes registration `id` its customer's default (audited as DF).
    pub async fn set_default(&self, scope: Scope<'_>, id: &str, actor: &Actor) -> Result<StoredView, VaultError> {
        match token_id::classify(id) {
            Some(TokenRef::Durable(TokenKind::Registration)) => {}
            Some(TokenRef::Durable(TokenKind::Omni)) => {
                return Err(VaultError::InvalidArgument("only a registration can be a customer's default"));
            }
            _ => return Err(VaultError::NotFound),
        }
        let audit = self.audit("DF", scope.merchant_id, id, actor, "success");
        let row = match self.store.mark_default(TokenWrite { scope, id, audit: &audit }).await? {
            Some(row) => row,
            None => {
                // Live, so it has no customer: nothing it could be the default of.
                self.found(scope, id).await?;
                return Err(VaultError::InvalidArgument("a registration without a customer_id cannot be a default"));
            }
        };
        let mut view = self.view(row).await?;
        view.is_default = true;
        Ok(view)
    }

    pub async fn list(
        &self,
        scope: Scope<'_>,
        customer_id: &str,
        kind: Option<TokenKind>,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<StoredView>, VaultError> {
        let limit = page_limit(page_size);
        let rows = self.store.list(scope, customer_id, kind, page_token, limit).await?;
        let page = Page::of(rows, limit, |r| r.id.clone());
        let default_id = match page.items.iter().any(|r| r.kind == TokenKind::Registration) {
            true => self.default_id(scope, customer_id).await?,
            false => None,
        };
        let mut items = Vec::with_capacity(page.items.len());
        for row in page.items {
            let mut view = self.view(row).await?;
            view.is_default = default_id.as_deref() == Some(view.id.as_str());
            items.push(view);
        }
        Ok(Page { items, next_page_token: page.next_page_token })
    }

    /// Destroys the card data; `true` if this call deleted it, `false` if it already was.
    pub async fn delete(&self, scope: Scope<'_>, id: &str, actor: &Actor) -> Result<bool, VaultError> {
        let Some(TokenRef::Durable(kind)) = token_id::classify(id) else { return Err(VaultError::NotFound) };
        let audit = self.audit(kind.deleted_event(), scope.merchant_id, id, actor, "success");
        match self.store.delete(scope, id, self.clock.now_ms(), &audit).await? {
            Lookup::Found(()) => Ok(true),
            Lookup::Deleted => Ok(false),
            Lookup::NotFound => Err(VaultError::NotFound),
        }
    }

    /// Raises retention to 24 months after expiry (a bank account: after its
    /// last use, creation counting); extending again changes nothing.
    pub async fn extend(&self, scope: Scope<'_>, id: &str, actor: &Actor) -> Result<StoredView, VaultError> {
        let view = self.describe(scope, id).await?;
        let until = match view.account {
            Some(_) => account_retain_until(view.last_used_at.unwrap_or(view.created_at), true),
            None => {
                let expiry =
                    common::card::Expiry { month: view.card.masked.exp_month, year: view.card.masked.exp_year };
                retain_until(expiry, true)
            }
        };
        let audit = self.audit("EX", scope.merchant_id, id, actor, "success");
        match self.store.extend(scope, id, until, &audit).await? {
            Lookup::Found(row) => self.view(row).await,
            Lookup::Deleted => Err(VaultError::TokenDeleted),
            Lookup::NotFound => Err(VaultError::NotFound),
        }
    }

    pub async fn audit_events(
        &self,
        merchant_id: &str,
        token_id: &str,
        from: Millis,
        to: Millis,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<AuditRecord>, VaultError> {
        let limit = page_limit(page_size);
        let after_id = if page_token.is_empty() {
            0
        } else {
            page_token.parse().map_err(|_| VaultError::InvalidArgument("page_token is not one this API returned"))?
        };
        let query = AuditQuery {
            merchant_id,
            token_id: (!token_id.is_empty()).then_some(token_id),
            from,
            to: if to == 0 { Millis::MAX / 2 } else { to },
            after_id,
            limit,
        };
        Ok(Page::of(self.store.audit_events(query).await?, limit, |e| e.id.to_string()))
    }
}
