-- Statements (3201 totals, 3202 details; DOMAIN.md section 7): a province serves the
-- settlements it made and reversed over China days, so it finds them by instant.
CREATE INDEX settlements_province_settled_at ON settlements (province, settled_at);
CREATE INDEX settlements_province_reversed_at ON settlements (province, reversed_at)
    WHERE reversed_at IS NOT NULL;
