-- SEPA direct debit: what is shown of the bank account a payment was made
-- from (never the IBAN: its last four, country, bank code, holder and BIC;
-- the brand is DIRECTDEBIT_SEPA whenever account_last4 is set), and the
-- mandate the debit was made under (its reference and ISO 8601 date of
-- signature). Ledger lines show the account in their card columns.
ALTER TABLE payments ADD COLUMN account_last4 TEXT;
ALTER TABLE payments ADD COLUMN account_country TEXT;
ALTER TABLE payments ADD COLUMN account_bank_code TEXT;
ALTER TABLE payments ADD COLUMN account_holder TEXT;
ALTER TABLE payments ADD COLUMN account_bic TEXT;
ALTER TABLE payments ADD COLUMN mandate_id TEXT;
ALTER TABLE payments ADD COLUMN mandate_signed TEXT;
