-- Durable card tokens, merchants' data keys and the audit trail.
-- Instants are Unix seconds: a 13-digit millisecond count could pass Luhn and
-- trip the card-number scan of the database.

CREATE TABLE data_keys (
    merchant_id TEXT NOT NULL,
    purpose     TEXT NOT NULL,            -- 'data' (record encryption) | 'fingerprint'
    version     BIGINT NOT NULL,
    kek_version BIGINT NOT NULL,
    wrapped     BYTEA NOT NULL,           -- the key sealed under the KEK, AAD = merchant|purpose|version
    rotation_id BIGINT,                    -- the re-encryption run that created this version
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, purpose, version)
);

-- Re-encryption runs: an unfinished one is resumed, never started again.
CREATE TABLE key_rotations (
    id          BIGINT PRIMARY KEY,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT
);

CREATE TABLE card_tokens (
    id           TEXT PRIMARY KEY,
    merchant_id  TEXT NOT NULL,
    livemode     BIGINT NOT NULL,         -- 0 test, 1 live (flags are integers on both backends)
    kind         TEXT NOT NULL,           -- 'registration' | 'omni'
    customer_id  TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,           -- HMAC-SHA256 under the merchant's fingerprint key
    meta         BYTEA,                   -- sealed metadata; NULL once deleted
    card         BYTEA,                   -- sealed card (never a security code); NULL once deleted
    dek_version  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    retain_until BIGINT NOT NULL,
    extended     BIGINT NOT NULL DEFAULT 0,
    deleted_at   BIGINT,
    consumer_ref TEXT
);

CREATE UNIQUE INDEX card_tokens_same_card
    ON card_tokens (merchant_id, livemode, kind, customer_id, fingerprint) WHERE deleted_at IS NULL;
CREATE INDEX card_tokens_by_customer
    ON card_tokens (merchant_id, livemode, customer_id, id) WHERE deleted_at IS NULL;
CREATE INDEX card_tokens_due ON card_tokens (retain_until) WHERE deleted_at IS NULL;
CREATE INDEX card_tokens_by_dek ON card_tokens (merchant_id, dek_version) WHERE deleted_at IS NULL;
CREATE INDEX card_tokens_by_consumer ON card_tokens (merchant_id, consumer_ref) WHERE consumer_ref IS NOT NULL;

CREATE TABLE audit_events (
    id             BIGSERIAL PRIMARY KEY,
    at             BIGINT NOT NULL,
    event_type     TEXT NOT NULL,
    merchant_id    TEXT NOT NULL,
    token_id       TEXT NOT NULL,
    actor          TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    outcome        TEXT NOT NULL
);
CREATE INDEX audit_events_by_merchant ON audit_events (merchant_id, id);
CREATE INDEX audit_events_by_token ON audit_events (merchant_id, token_id, id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
