-- What a durable token holds: 'card', or 'account' (a SEPA bank account, a
-- registration only). An account's retain_until is 14 months (24 extended)
-- after its last use, moved by every Detokenize in the same statement; a
-- card's follows its expiry. The sweeper reads retain_until for both.
ALTER TABLE card_tokens ADD COLUMN instrument TEXT NOT NULL DEFAULT 'card';
