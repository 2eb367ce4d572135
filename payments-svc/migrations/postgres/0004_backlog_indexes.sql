-- The reconciler's gauges count pending payments (and find the oldest) and
-- idempotency keys in flight on every pass: partial indexes keep those counts
-- to the rows they count, however large the finished history grows.
CREATE INDEX payments_pending ON payments (created_at) WHERE status = 'pending';
CREATE INDEX idempotency_keys_in_flight ON idempotency_keys (locked_until) WHERE state = 'in_flight';
