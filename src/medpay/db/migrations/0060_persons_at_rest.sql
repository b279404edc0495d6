-- Person identifiers at rest (issue 12, item 3; medpay.security.persons): every psn_no
-- column holds the person's reference, a keyed hash of the number (32 hex digits), and
-- persons.sealed the number and the name, sealed under the gateway's person key. No
-- table keeps either in the clear, so a dump of this database alone names nobody.
--
-- A reference can only be computed with the key, which PostgreSQL never sees: so this
-- migration cannot convert rows written before it. It refuses to run on a database that
-- already holds persons or payments (none does outside development: load staging again
-- with `medpay seed` after migrating).

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM persons) OR EXISTS (SELECT 1 FROM payments) THEN
        RAISE EXCEPTION 'persons at rest: this database holds person numbers in the clear, which only the gateway''s person key can convert; migrate an empty database and load it again'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END $$;

ALTER TABLE persons DROP COLUMN name;
ALTER TABLE persons ADD COLUMN sealed bytea NOT NULL CHECK (octet_length(sealed) > 29);
ALTER TABLE persons ADD CONSTRAINT persons_psn_no_is_a_reference CHECK (psn_no ~ '^[0-9a-f]{32}$');

-- insurance_segments, filings, relationship_transfers and prescriptions reference persons.
-- A payment or an order may be of a person the registry does not know (it is refused,
-- and recorded so): each keeps a sealed copy of its own, its answers need no lookup.
ALTER TABLE payments ADD CONSTRAINT payments_psn_no_is_a_reference CHECK (psn_no ~ '^[0-9a-f]{32}$');
ALTER TABLE payments ADD COLUMN person_sealed bytea NOT NULL CHECK (octet_length(person_sealed) > 29);
ALTER TABLE mobile_orders ADD CONSTRAINT mobile_orders_psn_no_is_a_reference CHECK (psn_no ~ '^[0-9a-f]{32}$');
ALTER TABLE mobile_orders ADD COLUMN person_sealed bytea NOT NULL CHECK (octet_length(person_sealed) > 29);

-- What was sent to a province is kept to send it again; the person in it by reference.
ALTER TABLE province_messages ADD CONSTRAINT province_messages_psn_no_is_a_reference
    CHECK (request IS NULL OR NOT request ? 'psn_no' OR request->>'psn_no' ~ '^[0-9a-f]{32}$');
ALTER TABLE relationship_transfer_events ADD CONSTRAINT relationship_transfer_events_psn_no_is_a_reference
    CHECK (NOT details ? 'psn_no' OR details->>'psn_no' ~ '^[0-9a-f]{32}$');
ALTER TABLE notification_outbox ADD CONSTRAINT notification_outbox_psn_no_is_a_reference
    CHECK (NOT payload ? 'psn_no' OR payload->>'psn_no' ~ '^[0-9a-f]{32}$');
