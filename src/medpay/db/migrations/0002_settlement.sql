-- Settlement: who insures whom, who treats, what each item is, what the province
-- answered, and the ledger. Amounts are integer fen; ratios integer basis points.

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- An insured person (psn_no), known to the gateway.
CREATE TABLE persons (
    psn_no     text PRIMARY KEY CHECK (psn_no ~ '^[0-9A-Za-z]{6,32}$'),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A segment of a person's basic medical insurance relationship: one coordination
-- area, one scheme, one period [valid_from, valid_until). PostgreSQL itself refuses
-- two overlapping segments of one person (DOMAIN.md section 6).
CREATE TABLE insurance_segments (
    segment_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    psn_no              text NOT NULL REFERENCES persons (psn_no),
    insured_area        text NOT NULL CHECK (insured_area ~ '^[1-6][0-9]{5}$'),  -- insuplc_admdvs
    scheme              text NOT NULL CHECK (scheme IN ('employee', 'resident')),  -- insutype 310 / 390
    valid_from          date NOT NULL,
    valid_until         date,
    contribution_months integer NOT NULL DEFAULT 0 CHECK (contribution_months >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_until IS NULL OR valid_until > valid_from),
    EXCLUDE USING gist (psn_no WITH =, daterange(valid_from, valid_until, '[)') WITH &&)
);

-- A designated institution or pharmacy (fixmedins_code). Agreements come with the
-- institution registry; here, what settlement needs: area, kind and level.
CREATE TABLE institutions (
    institution_code text PRIMARY KEY CHECK (institution_code ~ '^[A-Z][0-9]{11}$'),  -- fixmedins_code
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),  -- fixmedins_name
    area             text NOT NULL CHECK (area ~ '^[1-6][0-9]{5}$'),
    kind             text NOT NULL CHECK (kind IN ('hospital', 'internet_hospital', 'retail_pharmacy')),
    level            smallint CHECK (level BETWEEN 1 AND 3),
    relies_on        text REFERENCES institutions (institution_code),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'internet_hospital') = (relies_on IS NOT NULL)),
    CHECK (kind = 'retail_pharmacy' OR level IS NOT NULL)
);

-- The treatment place's catalogue (DOMAIN.md section 2): per area (a province or a
-- city), each item's kind, class, price limit and class-B pre-self-pay share.
CREATE TABLE catalogue_items (
    catalogue_area  text NOT NULL CHECK (catalogue_area ~ '^[1-6][0-9]{5}$'),
    item_code       text NOT NULL,  -- med_list_codg
    name            text NOT NULL,  -- med_list_name
    kind            text NOT NULL CHECK (kind IN ('drug', 'service', 'consumable', 'non_medical')),
    item_class      text NOT NULL CHECK (item_class IN ('A', 'B', 'C')),  -- chrgitm_lv 01 / 02 / 03
    price_limit_fen bigint CHECK (price_limit_fen >= 0),  -- pric_uplmt_amt
    pre_self_pay_bp integer CHECK (pre_self_pay_bp BETWEEN 0 AND 10000),  -- selfpay_prop
    PRIMARY KEY (catalogue_area, item_code),
    CHECK (kind <> 'non_medical' OR item_class = 'C')
);

ALTER TABLE payments
    ADD COLUMN service_date date NOT NULL DEFAULT (now() AT TIME ZONE 'Asia/Shanghai')::date,
    ADD COLUMN insured_area text CHECK (insured_area ~ '^[1-6][0-9]{5}$'),  -- insuplc_admdvs
    ADD COLUMN scheme       text CHECK (scheme IN ('employee', 'resident')),
    ADD COLUMN failure_detail text;

-- Every message sent to a province, under its msgid (the idempotency key towards
-- the province): allocated and committed before sending, so a payment is never
-- sent again under a new msgid.
CREATE SEQUENCE msgid_serial CYCLE MAXVALUE 9999;
CREATE TABLE province_messages (
    msgid      text PRIMARY KEY CHECK (msgid ~ '^[A-Z][0-9]{11}[0-9]{14}[0-9]{4}$'),
    payment_id uuid NOT NULL REFERENCES payments (payment_id),
    infno      text NOT NULL CHECK (infno IN ('2207', '2208')),
    province   text NOT NULL CHECK (province ~ '^[1-6][0-9]0000$'),
    outcome    text CHECK (outcome IN ('accepted', 'rejected', 'unavailable', 'unknown')),
    created_at timestamptz NOT NULL DEFAULT now()
);
-- At most one live (unanswered, unknown) or accepted message per payment and
-- transaction; refused or undelivered ones stay as history and a retry gets a new msgid.
CREATE UNIQUE INDEX province_messages_live ON province_messages (payment_id, infno)
    WHERE outcome IS NULL OR outcome IN ('accepted', 'unknown');

-- The province's answer to a confirmed settlement (DOMAIN.md section 3), kept as given.
CREATE TABLE settlements (
    payment_id                 uuid PRIMARY KEY REFERENCES payments (payment_id),
    setl_id                    text NOT NULL,
    insured_province           text NOT NULL,
    treatment_province         text NOT NULL,
    medical_fee_total_fen      bigint NOT NULL CHECK (medical_fee_total_fen >= 0),     -- medfee_sumamt
    full_own_pay_fen           bigint NOT NULL CHECK (full_own_pay_fen >= 0),          -- fulamt_ownpay_amt
    over_limit_self_pay_fen    bigint NOT NULL CHECK (over_limit_self_pay_fen >= 0),   -- overlmt_selfpay
    pre_self_pay_fen           bigint NOT NULL CHECK (pre_self_pay_fen >= 0),          -- preselfpay_amt
    in_scope_fen               bigint NOT NULL CHECK (in_scope_fen >= 0),              -- inscp_scp_amt
    deductible_fen             bigint NOT NULL CHECK (deductible_fen >= 0),            -- act_pay_dedc
    basic_fund_fen             bigint NOT NULL CHECK (basic_fund_fen >= 0),            -- hifp_pay
    reimbursement_ratio_bp     integer NOT NULL CHECK (reimbursement_ratio_bp BETWEEN 0 AND 10000),  -- pool_prop_selfpay
    critical_illness_fen       bigint NOT NULL CHECK (critical_illness_fen >= 0),      -- hifmi_pay
    medical_assistance_fen     bigint NOT NULL CHECK (medical_assistance_fen >= 0),    -- maf_pay
    fund_total_fen             bigint NOT NULL CHECK (fund_total_fen >= 0),            -- fund_pay_sumamt
    personal_share_fen         bigint NOT NULL CHECK (personal_share_fen >= 0),        -- psn_part_amt
    personal_account_fen       bigint NOT NULL CHECK (personal_account_fen >= 0),      -- acct_pay
    cash_fen                   bigint NOT NULL CHECK (cash_fen >= 0),                  -- psn_cash_pay
    account_balance_after_fen  bigint NOT NULL CHECK (account_balance_after_fen >= 0), -- balc
    settled_at                 timestamptz NOT NULL DEFAULT now(),
    CHECK (fund_total_fen = basic_fund_fen + critical_illness_fen + medical_assistance_fen),
    CHECK (fund_total_fen + personal_account_fen + cash_fen = medical_fee_total_fen),
    CHECK (personal_share_fen = personal_account_fen + cash_fen)
);

-- A confirmed reversal of a settlement (2208).
CREATE TABLE reversals (
    payment_id  uuid PRIMARY KEY REFERENCES settlements (payment_id),
    reversed_at timestamptz NOT NULL DEFAULT now()
);

-- Double-entry ledger. A journal is one money movement; its postings are signed
-- amounts (debit > 0, credit < 0) that sum to zero, which PostgreSQL checks at
-- commit. Postings are never updated or deleted.
CREATE TABLE ledger_journals (
    journal_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id uuid NOT NULL REFERENCES payments (payment_id),
    kind       text NOT NULL CHECK (kind IN ('settlement', 'reversal')),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (payment_id, kind)
);

CREATE TABLE ledger_postings (
    journal_id bigint NOT NULL REFERENCES ledger_journals (journal_id),
    line_no    smallint NOT NULL CHECK (line_no >= 1),
    account    text NOT NULL CHECK (account ~ '^[a-z_]+(:[A-Za-z0-9_]+)*$'),
    amount_fen bigint NOT NULL CHECK (amount_fen <> 0),
    PRIMARY KEY (journal_id, line_no)
);
CREATE INDEX ledger_postings_account ON ledger_postings (account);

CREATE FUNCTION ledger_journal_is_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    imbalance bigint;
BEGIN
    SELECT coalesce(sum(amount_fen), 0) INTO imbalance
      FROM ledger_postings WHERE journal_id = NEW.journal_id;
    IF imbalance <> 0 THEN
        RAISE EXCEPTION 'ledger journal % is not balanced (off by % fen)', NEW.journal_id, imbalance
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_postings_balanced
    AFTER INSERT ON ledger_postings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_journal_is_balanced();

CREATE FUNCTION ledger_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger postings are never changed or deleted' USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER ledger_postings_append_only
    BEFORE UPDATE OR DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();
