-- A journal's postings are written in one statement (medpay.ledger.post_journal), so
-- its balance is checked once per statement, over every journal the statement touched,
-- instead of once per posting row at commit: the same refusal, a third of the queries
-- on the payment path. A journal split over several statements must balance after each.
DROP TRIGGER ledger_postings_balanced ON ledger_postings;
DROP FUNCTION ledger_journal_is_balanced();

CREATE FUNCTION ledger_journals_are_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    unbalanced record;
BEGIN
    SELECT p.journal_id, sum(p.amount_fen) AS imbalance INTO unbalanced
      FROM ledger_postings p
     WHERE p.journal_id IN (SELECT DISTINCT journal_id FROM new_postings)
     GROUP BY p.journal_id
    HAVING sum(p.amount_fen) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger journal % is not balanced (off by % fen)',
            unbalanced.journal_id, unbalanced.imbalance
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_postings_balanced
    AFTER INSERT ON ledger_postings
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_journals_are_balanced();
