-- A customer's default registration: the live one with the highest
-- default_rank. A customer's first registration is inserted with rank 1;
-- SetDefaultToken sets one above the customer's highest. With none left above
-- 0, the first created is the default.
ALTER TABLE card_tokens ADD COLUMN default_rank BIGINT NOT NULL DEFAULT 0;
