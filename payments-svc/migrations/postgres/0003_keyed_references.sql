-- Idempotency keys and request hashes are stored keyed from now on: HMAC-SHA256
-- under payments-svc's reference key, `v<version>:<hex>` (PCI DSS 3.5.1.1). The
-- records written before held the caller's key in clear and an unkeyed SHA-256
-- of the request, card number and CVV included: they are dropped, not kept
-- for their remaining retention. A retry of a request made before the upgrade
-- runs as a new request (docs/PAYMENTS.md, "Keyed references").
DELETE FROM idempotency_keys;
