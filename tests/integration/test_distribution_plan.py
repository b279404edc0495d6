"""The migrated schema keeps to the distribution plan of docs/scaling.md (issue 12, item 7).

The plan, as data: every table is distributed (by a co-location group and its column),
a reference table, or local to the coordinator. Citus can enforce a primary key, a
unique constraint, an exclusion constraint or a unique index on a distributed table
only if it includes the distribution column, and a foreign key between distributed
tables only within one co-location group, through that column. So for each key of a
distributed table the plan says:

* ``holds``: it already includes the distribution column;
* ``prefix``: the column is put in front when the table is distributed (the table lacks
  the column today, or the key does);
* an exception, with its reason and what replaces it (docs/scaling.md).

The test fails when the schema and the plan part: a new table, key or cross-group
foreign key not classified; a key said to hold that does not; a gap (a distributed
table without its column) that appears, or one closed without the plan saying so.
"""

from __future__ import annotations

import asyncpg

#: table -> (co-location group, distribution column)
DISTRIBUTED: dict[str, tuple[str, str]] = {
    # A payment and everything it causes, by the insured province it was settled with
    # (fixed when the payment is received): one province's payments on one shard group.
    "payments": ("insured_province", "insured_province"),
    "payment_items": ("insured_province", "insured_province"),
    "province_messages": ("insured_province", "province"),
    "settlements": ("insured_province", "insured_province"),
    "reversals": ("insured_province", "insured_province"),
    "province_callbacks": ("insured_province", "province"),
    "notification_outbox": ("insured_province", "insured_province"),
    "ledger_journals": ("insured_province", "insured_province"),
    "ledger_postings": ("insured_province", "insured_province"),
    "payment_state_changes": ("insured_province", "insured_province"),
    "settlement_corrections": ("insured_province", "insured_province"),
    # A refund ties a payment to its replacement, both settled with the same province.
    "refunds": ("insured_province", "insured_province"),
    "refund_items": ("insured_province", "insured_province"),
    # The books (issue 11): reconciled and cleared per province, so with its payments.
    "reconciliation_runs": ("insured_province", "province"),
    "reconciliation_differences": ("insured_province", "province"),
    "clearing_entries": ("insured_province", "insured_province"),
    "clearing_period_lines": ("insured_province", "insured_province"),
    # A person's registry: by psn_no, since the insured province changes on a transfer
    # (DOMAIN.md section 6) and a distribution column's value cannot change.
    "persons": ("person", "psn_no"),
    "insurance_segments": ("person", "psn_no"),
    "filings": ("person", "psn_no"),
    "filing_changes": ("person", "psn_no"),
    "relationship_transfers": ("person", "psn_no"),
    "relationship_transfer_events": ("person", "psn_no"),
    "prescriptions": ("person", "psn_no"),
    "prescription_items": ("person", "psn_no"),
    "prescription_redemptions": ("person", "psn_no"),
    "prescription_redemption_events": ("person", "psn_no"),
    # The callers' replay and idempotency records, spread evenly by their own key.
    "request_nonces": ("nonce", "nonce"),
    "idempotency_keys": ("idempotency_key", "idempotency_key"),
    "mobile_orders": ("app", "app_id"),
}

#: Small, read on every request, written by operators: a copy on every node.
REFERENCE = {
    "apps", "app_keys", "app_mobile_credentials", "agencies", "agency_keys", "operators",
    "operator_keys", "institutions", "institution_keys", "institution_agreements",
    "agreement_suspensions", "agreement_events", "catalogue_items", "clearing_periods",
}  # fmt: skip

#: On the coordinator only.
LOCAL = {
    "schema_migrations", "daily_jobs", "rate_limit_counters",
    "operator_logins", "operator_login_attempts", "operator_sessions",
}  # fmt: skip

#: Distributed tables that lack their distribution column today (docs/scaling.md, "Gaps").
GAPS = {
    "payments", "payment_items", "reversals", "notification_outbox", "ledger_journals",
    "ledger_postings", "payment_state_changes", "settlement_corrections",
    "refunds", "refund_items", "filing_changes", "relationship_transfer_events",
    "prescription_items", "prescription_redemptions", "prescription_redemption_events",
}  # fmt: skip

_NARROWED = "narrowed: unique per {0}; across them the 24-hour idempotency record guards"

#: Every key (primary, unique, exclusion, unique index) of every distributed table.
KEYS: dict[str, dict[str, str]] = {
    "payments": {
        "payments_pkey": "prefix",
        "payments_app_id_idempotency_key_key": "exception: a lookup table payment_keys"
        " (app_id, idempotency_key) distributed by idempotency_key keeps it for good",
        "payments_replaces_payment_id_key": "prefix",
    },
    "refunds": {
        "refunds_pkey": "prefix",
        "refunds_replacement_payment_id_key": "prefix",
        "refunds_one_per_payment": "prefix",
        "refunds_app_id_idempotency_key_key": "exception: the lookup table payment_keys"
        " keeps a refund's key for good too (its id in payment_id's place)",
    },
    "refund_items": {"refund_items_pkey": "prefix"},
    "payment_items": {"payment_items_pkey": "prefix"},
    "province_messages": {
        # A msgid must be unique towards the province it is sent to: that is all it needs.
        "province_messages_pkey": "prefix",
        "province_messages_live": "prefix",
    },
    "settlements": {"settlements_pkey": "prefix"},
    "reversals": {"reversals_pkey": "prefix"},
    "province_callbacks": {
        "province_callbacks_pkey": "prefix",
        "province_callbacks_province_callback_id_key": "holds",
    },
    "notification_outbox": {
        "notification_outbox_pkey": "prefix",
        "notification_outbox_payment_id_sequence_key": "prefix",
    },
    "ledger_journals": {
        "ledger_journals_pkey": "prefix",
        "ledger_journals_payment_id_kind_key": "prefix",
        # A transfer's journal is kept with the old area's province (fixed per transfer).
        "ledger_journals_transfer_id_kind_key": "prefix",
    },
    "ledger_postings": {"ledger_postings_pkey": "prefix"},
    "payment_state_changes": {"payment_state_changes_pkey": "prefix"},
    "settlement_corrections": {"settlement_corrections_pkey": "prefix"},
    "reconciliation_runs": {"reconciliation_runs_pkey": "prefix"},
    "reconciliation_differences": {
        "reconciliation_differences_pkey": "prefix",
        "reconciliation_differences_province_day_kind_subject_key": "holds",
    },
    "clearing_entries": {
        "clearing_entries_pkey": "prefix",
        "clearing_entries_payment_id_kind_key": "prefix",
    },
    "clearing_period_lines": {"clearing_period_lines_pkey": "holds"},
    "persons": {"persons_pkey": "holds"},
    "insurance_segments": {
        "insurance_segments_pkey": "prefix",
        "insurance_segments_one_open": "holds",
        "insurance_segments_psn_no_daterange_excl": "holds",
    },
    "filings": {
        "filings_pkey": "prefix",
        "filings_no_duplicate_outing": "holds",
        "filings_one_long_term_residence": "holds",
    },
    "filing_changes": {
        "filing_changes_pkey": "prefix",
        "filing_changes_agency_id_idempotency_key_key": _NARROWED.format("person"),
    },
    "relationship_transfers": {
        "relationship_transfers_pkey": "prefix",
        "relationship_transfers_one_open": "holds",
        "relationship_transfers_to_segment_id_key": "prefix",
    },
    "relationship_transfer_events": {
        "relationship_transfer_events_pkey": "prefix",
        "relationship_transfer_events_transfer_id_step_key": "prefix",
        "relationship_transfer_events_agency_id_idempotency_key_key": _NARROWED.format("person"),
    },
    "prescriptions": {
        "prescriptions_pkey": "prefix",
        "prescriptions_institution_code_idempotency_key_key": _NARROWED.format("person"),
    },
    "prescription_items": {
        "prescription_items_pkey": "prefix",
        "prescription_items_prescription_id_line_no_key": "prefix",
    },
    "prescription_redemptions": {
        "prescription_redemptions_pkey": "prefix",
        "prescription_redemptions_payment_id_key": "prefix",
    },
    "prescription_redemption_events": {"prescription_redemption_events_pkey": "prefix"},
    "request_nonces": {"request_nonces_pkey": "holds"},
    "idempotency_keys": {"idempotency_keys_pkey": "holds"},
    "mobile_orders": {
        "mobile_orders_pkey": "prefix",
        "mobile_orders_app_id_med_org_ord_key": "holds",
        "mobile_orders_pay_auth_id_key": "exception: a lookup table pay_auth_uses"
        " (pay_auth_id) distributed by pay_auth_id, written in the same transaction",
    },
}

#: Foreign keys between co-location groups, which Citus cannot hold.
FOREIGN_KEY_EXCEPTIONS = {
    "ledger_journals_transfer_id_fkey": "a transfer's journal (insured_province) and the"
    " transfer (person) are written in one distributed transaction by the transfer service",
    "prescription_redemptions_payment_id_fkey": "the redemption (person) and the payment"
    " (insured_province) are written in one distributed transaction by the payment flow",
}

TABLES = "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')"
COLUMNS = "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped"
KEY_COLUMNS = """
SELECT i.relname AS name,
       ARRAY(SELECT a.attname FROM unnest(ix.indkey) k
               JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k) AS columns
  FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid
 WHERE ix.indrelid = $1::regclass
   AND (ix.indisunique OR EXISTS (SELECT 1 FROM pg_constraint c
                                   WHERE c.conindid = ix.indexrelid AND c.contype = 'x'))
"""
FOREIGN_KEYS = """
SELECT conname, conrelid::regclass::text AS child, confrelid::regclass::text AS parent
  FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace
"""


async def test_every_table_has_one_place_in_the_plan(db_pool: asyncpg.Pool) -> None:
    tables = {row["relname"] for row in await db_pool.fetch(TABLES)}
    placed = [*DISTRIBUTED, *REFERENCE, *LOCAL]

    assert len(placed) == len(set(placed)), "a table is placed twice"
    assert tables - set(placed) == set(), "tables docs/scaling.md does not place"
    assert set(placed) - tables == set(), "the plan places tables that do not exist"


async def test_the_gaps_are_exactly_the_distributed_tables_without_their_column(
    db_pool: asyncpg.Pool,
) -> None:
    lacking = set()
    for table, (_group, column) in DISTRIBUTED.items():
        columns = {row["attname"] for row in await db_pool.fetch(COLUMNS, table)}
        if column not in columns:
            lacking.add(table)

    assert lacking == GAPS


async def test_every_key_of_a_distributed_table_includes_its_column_or_is_planned(
    db_pool: asyncpg.Pool,
) -> None:
    wrong = []
    for table, (_group, column) in DISTRIBUTED.items():
        keys = {row["name"]: set(row["columns"]) for row in await db_pool.fetch(KEY_COLUMNS, table)}
        planned = KEYS.get(table, {})
        wrong += [f"{table}.{name}: not in the plan" for name in keys.keys() - planned.keys()]
        wrong += [f"{table}.{name}: planned, gone" for name in planned.keys() - keys.keys()]
        for name, columns in keys.items():
            verdict = planned.get(name, "")
            if verdict == "holds" and column not in columns:
                wrong.append(f"{table}.{name}: said to hold, lacks {column}")
            if verdict == "prefix" and column in columns:
                wrong.append(f"{table}.{name}: includes {column} now; say holds")
            if verdict not in ("holds", "prefix") and not verdict.startswith(
                ("exception: ", "narrowed: ")
            ):
                wrong.append(f"{table}.{name}: {verdict!r} is no verdict")

    assert wrong == []


async def test_foreign_keys_stay_within_a_group_or_point_at_reference_tables(
    db_pool: asyncpg.Pool,
) -> None:
    def group(table: str) -> str:
        if table in DISTRIBUTED:
            return DISTRIBUTED[table][0]
        return "reference" if table in REFERENCE else "local"

    wrong = []
    for row in await db_pool.fetch(FOREIGN_KEYS):
        child, parent = group(row["child"]), group(row["parent"])
        fine = parent == "reference" or child == parent
        if not fine and row["conname"] not in FOREIGN_KEY_EXCEPTIONS:
            wrong.append(
                f"{row['conname']}: {row['child']} ({child}) -> {row['parent']} ({parent})"
            )
    crossing = {
        row["conname"]
        for row in await db_pool.fetch(FOREIGN_KEYS)
        if row["conname"] in FOREIGN_KEY_EXCEPTIONS
    }

    assert wrong == []
    assert crossing == set(FOREIGN_KEY_EXCEPTIONS), "an exception for a foreign key that is gone"
