"""SQL for the catalogue and for messages to provinces."""

from __future__ import annotations

__all__ = [
    "ALLOCATE_MSGID_SERIAL",
    "CATALOGUE_ENTRIES",
    "INSERT_CATALOGUE_ENTRY",
    "INSERT_PROVINCE_MESSAGE",
    "MESSAGE_BY_MSGID",
    "MESSAGE_OF_PAYMENT",
    "SET_MESSAGE_OUTCOME",
]

# The city's own entry wins over the province's.
CATALOGUE_ENTRIES = """
SELECT DISTINCT ON (item_code) item_code, name, kind, item_class, price_limit_fen, pre_self_pay_bp
  FROM catalogue_items
 WHERE item_code = any($1::text[]) AND catalogue_area = any($2::text[])
 ORDER BY item_code, catalogue_area = $3 DESC
"""

INSERT_CATALOGUE_ENTRY = """
INSERT INTO catalogue_items (catalogue_area, item_code, name, kind, item_class, price_limit_fen, pre_self_pay_bp)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (catalogue_area, item_code) DO NOTHING
"""

ALLOCATE_MSGID_SERIAL = "SELECT nextval('msgid_serial')"

# Nothing comes back when the msgid is taken (the serial wrapped within one second).
INSERT_PROVINCE_MESSAGE = """
INSERT INTO province_messages (msgid, payment_id, infno, province, request) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (msgid) DO NOTHING
RETURNING msgid
"""

MESSAGE_BY_MSGID = (
    "SELECT msgid, payment_id, infno, province, outcome FROM province_messages WHERE msgid = $1"
)

# The live or accepted message of a payment for one transaction (see the partial unique index).
MESSAGE_OF_PAYMENT = """
SELECT msgid, outcome, request FROM province_messages
 WHERE payment_id = $1 AND infno = $2 AND (outcome IS NULL OR outcome IN ('accepted', 'unknown'))
"""

SET_MESSAGE_OUTCOME = "UPDATE province_messages SET outcome = $2 WHERE msgid = $1"
