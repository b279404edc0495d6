-- An idempotent replay answers with the first response's Location too, not only its
-- status and body.
ALTER TABLE idempotency_keys ADD COLUMN response_location text;
