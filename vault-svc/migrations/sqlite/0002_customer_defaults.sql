-- A customer's default registration: the live one with the highest
-- default_rank (SetDefaultToken sets it one above the customer's highest),
-- else the first created (rank 0 for all).
ALTER TABLE card_tokens ADD COLUMN default_rank BIGINT NOT NULL DEFAULT 0;
