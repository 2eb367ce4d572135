-- Write-ahead payments: a payment or follow-up is recorded `pending` before the
-- vault or the acquirer is called; `recovery_point` names the last step done
-- (started → card_obtained → acquirer_answered → tokenized → charge_reported →
-- finished), and the process working on it holds `lease_until` (Unix seconds),
-- renewed while it works. Work whose lease has run out belongs to the
-- reconciler or to a retry with the same idempotency key.
UPDATE payments SET status = 'failed' WHERE status = 'timed_out';
ALTER TABLE payments ADD COLUMN recovery_point TEXT NOT NULL DEFAULT 'finished';
ALTER TABLE payments ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
-- What the source of an initial payment was (card, single_use, registration,
-- omni) and what it asked to create once approved (registration, omni): what
-- a resumed payment needs besides the columns it already has.
ALTER TABLE payments ADD COLUMN source_kind TEXT NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN tokenize TEXT NOT NULL DEFAULT '';
CREATE INDEX payments_unfinished ON payments (lease_until) WHERE recovery_point <> 'finished';

-- An in-flight key's lease; `released` keeps the request hash of a key whose
-- work may be resumed by a retry.
ALTER TABLE idempotency_keys ADD COLUMN locked_until BIGINT NOT NULL DEFAULT 0;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
