"""SQL for persons and their insurance segments."""

from __future__ import annotations

__all__ = ["INSERT_PERSON", "INSERT_SEGMENT", "SEGMENT_ON_DATE"]

INSERT_PERSON = """
INSERT INTO persons (psn_no, name) VALUES ($1, $2)
ON CONFLICT (psn_no) DO NOTHING
"""

# Seeding: open a segment unless the person already has one covering that date.
INSERT_SEGMENT = """
INSERT INTO insurance_segments (psn_no, insured_area, scheme, valid_from, contribution_months)
SELECT $1, $2, $3, $4, $5
 WHERE NOT EXISTS (SELECT 1 FROM insurance_segments
                    WHERE psn_no = $1 AND daterange(valid_from, valid_until, '[)') @> $4::date)
"""

SEGMENT_ON_DATE = """
SELECT psn_no, insured_area, scheme, valid_from, valid_until, contribution_months
  FROM insurance_segments
 WHERE psn_no = $1 AND daterange(valid_from, valid_until, '[)') @> $2::date
"""
