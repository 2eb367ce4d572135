-- Durable card tokens, merchants' data keys and the audit trail (embedded
-- SQLite; same shape as the PostgreSQL schema). Instants are Unix seconds.

CREATE TABLE data_keys (
    merchant_id TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    version     BIGINT NOT NULL,
    kek_version BIGINT NOT NULL,
    wrapped     BLOB NOT NULL,
    rotation_id BIGINT,
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
    livemode     BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    meta         BLOB,
    card         BLOB,
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
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
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

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
