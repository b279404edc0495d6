"""SQL for designated institutions and pharmacies."""

from __future__ import annotations

__all__ = ["INSERT_INSTITUTION", "INSTITUTION_BY_CODE"]

INSERT_INSTITUTION = """
INSERT INTO institutions (institution_code, name, area, kind, level, relies_on)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (institution_code) DO NOTHING
"""

INSTITUTION_BY_CODE = """
SELECT institution_code, name, area, kind, level, relies_on
  FROM institutions WHERE institution_code = $1
"""
