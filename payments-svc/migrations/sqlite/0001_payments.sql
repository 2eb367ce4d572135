-- Payments, the transaction ledger and idempotency records (embedded SQLite; same
-- shape as the PostgreSQL schema). No card number is
-- ever stored here: only brand, BIN and last four. Instants are Unix seconds;
-- flags are 0/1 integers (as in the vault).

CREATE TABLE payments (
    id                      TEXT PRIMARY KEY,
    merchant_id             TEXT NOT NULL,
    livemode                BIGINT NOT NULL,
    payment_type            TEXT NOT NULL,       -- PA DB CP RV RF
    reference_id            TEXT,                -- CP/RV: the PA; RF: the DB or CP
    amount                  BIGINT NOT NULL,
    currency                TEXT NOT NULL,
    status                  TEXT NOT NULL,       -- approved | declined | timed_out | rejected
    result_code             TEXT NOT NULL,
    result_description      TEXT NOT NULL,
    token                   TEXT,                -- the token the payment used or created
    registration_id         TEXT,
    omni_token              TEXT,
    card_brand              TEXT,
    card_bin                TEXT,
    card_last4              TEXT,
    card_exp_month          BIGINT,
    card_exp_year           BIGINT,
    card_name               TEXT,
    si_mode                 TEXT,
    si_type                 TEXT,
    si_source               TEXT,
    si_initial_id           TEXT,
    captured_amount         BIGINT NOT NULL DEFAULT 0,
    refunded_amount         BIGINT NOT NULL DEFAULT 0,
    reversed                BIGINT NOT NULL DEFAULT 0,
    acquirer_reference      TEXT,
    customer_id             TEXT NOT NULL DEFAULT '',
    merchant_transaction_id TEXT NOT NULL DEFAULT '',
    description             TEXT NOT NULL DEFAULT '',
    created_at              BIGINT NOT NULL,
    -- The state machine's invariants, enforced by the database itself.
    CHECK (amount >= 0),
    CHECK (captured_amount >= 0 AND captured_amount <= amount),
    CHECK (refunded_amount >= 0 AND refunded_amount <= captured_amount),
    CHECK (NOT (reversed = 1 AND captured_amount > 0))
);
CREATE INDEX payments_by_reference ON payments (reference_id);
CREATE INDEX payments_by_token ON payments (merchant_id, token);

CREATE TABLE transactions (
    id                 TEXT PRIMARY KEY,
    merchant_id        TEXT NOT NULL,
    livemode           BIGINT NOT NULL,
    transaction_type   TEXT NOT NULL,            -- PA DB CP RV RF RG DR TK DT DL
    payment_id         TEXT NOT NULL DEFAULT '',
    reference_id       TEXT NOT NULL DEFAULT '',
    amount             BIGINT NOT NULL DEFAULT 0,
    currency           TEXT NOT NULL DEFAULT '',
    result_code        TEXT NOT NULL,
    result_description TEXT NOT NULL,
    token              TEXT NOT NULL DEFAULT '',
    card_brand         TEXT NOT NULL DEFAULT '',
    card_bin           TEXT NOT NULL DEFAULT '',
    card_last4         TEXT NOT NULL DEFAULT '',
    created_at         BIGINT NOT NULL,
    seq                INTEGER                   -- set to the rowid on insert (see trigger)
);
CREATE TRIGGER transactions_seq AFTER INSERT ON transactions
BEGIN UPDATE transactions SET seq = NEW.rowid WHERE rowid = NEW.rowid; END;
CREATE INDEX transactions_by_payment ON transactions (merchant_id, payment_id, seq);
CREATE INDEX transactions_by_reference ON transactions (merchant_id, reference_id, seq);
CREATE INDEX transactions_by_token ON transactions (merchant_id, token, seq);
CREATE INDEX transactions_by_time ON transactions (merchant_id, created_at, seq);

CREATE TABLE idempotency_keys (
    merchant_id  TEXT NOT NULL,
    key          TEXT NOT NULL,
    method       TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state        TEXT NOT NULL,                  -- in_flight | done
    response     BLOB,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, key)
);
