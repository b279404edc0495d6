-- The provincial platform simulator (DOMAIN.md sections 2, 3): what an insured place
-- holds about its persons, the settlements it confirmed, and the msgid log that makes
-- every request idempotent. Applied in schema "simulator"; amounts are integer fen.

-- An insured person of one of the simulated provinces.
CREATE TABLE persons (
    psn_no            text PRIMARY KEY CHECK (psn_no ~ '^[0-9]{20}$'),
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    insuplc_admdvs    text NOT NULL CHECK (insuplc_admdvs ~ '^[0-9]{6}$'),
    province          text GENERATED ALWAYS AS (substr(insuplc_admdvs, 1, 2) || '0000') STORED,
    insutype          text NOT NULL CHECK (insutype IN ('310', '390')),
    acct_balance_fen  bigint NOT NULL CHECK (acct_balance_fen >= 0),   -- personal account
    maf_eligible      boolean NOT NULL DEFAULT false,                  -- medical assistance
    -- residents have no personal account
    CHECK (insutype = '310' OR acct_balance_fen = 0)
);

-- Year-to-date totals (section 3, step 13), per person and calendar year of service.
CREATE TABLE person_year_totals (
    psn_no                   text NOT NULL REFERENCES persons (psn_no),
    year                     integer NOT NULL CHECK (year BETWEEN 2000 AND 2999),
    deductible_used_ytd_fen  bigint NOT NULL DEFAULT 0 CHECK (deductible_used_ytd_fen >= 0),
    fund_paid_ytd_fen        bigint NOT NULL DEFAULT 0 CHECK (fund_paid_ytd_fen >= 0),
    burden_ytd_fen           bigint NOT NULL DEFAULT 0 CHECK (burden_ytd_fen >= 0),
    PRIMARY KEY (psn_no, year)
);

-- Serial numbers for setl_id and inf_refmsgid.
CREATE SEQUENCE serial_seq;

-- A confirmed settlement (2207) and, once reversed (2208), its reversal.
CREATE TABLE settlements (
    setl_id                   text PRIMARY KEY,
    msgid                     text NOT NULL UNIQUE,
    province                  text NOT NULL CHECK (province ~ '^[0-9]{2}0000$'),
    psn_no                    text NOT NULL REFERENCES persons (psn_no),
    mdtrt_id                  text NOT NULL,
    chrg_bchno                text NOT NULL,
    fixmedins_code            text NOT NULL,
    insutype                  text NOT NULL CHECK (insutype IN ('310', '390')),
    year                      integer NOT NULL,        -- whose totals it changed
    state                     text NOT NULL DEFAULT 'settled'
                              CHECK (state IN ('settled', 'reversed')),
    medfee_total_fen          bigint NOT NULL CHECK (medfee_total_fen >= 0),          -- medfee_sumamt
    full_own_pay_fen          bigint NOT NULL CHECK (full_own_pay_fen >= 0),          -- fulamt_ownpay_amt
    over_limit_self_pay_fen   bigint NOT NULL CHECK (over_limit_self_pay_fen >= 0),   -- overlmt_selfpay
    pre_self_pay_fen          bigint NOT NULL CHECK (pre_self_pay_fen >= 0),          -- preselfpay_amt
    in_scope_fen              bigint NOT NULL CHECK (in_scope_fen >= 0),              -- inscp_scp_amt
    deductible_applied_fen    bigint NOT NULL CHECK (deductible_applied_fen >= 0),    -- act_pay_dedc
    ratio_bp                  integer NOT NULL CHECK (ratio_bp BETWEEN 0 AND 10000),  -- pool_prop_selfpay
    basic_fund_fen            bigint NOT NULL CHECK (basic_fund_fen >= 0),            -- hifp_pay
    burden_fen                bigint NOT NULL CHECK (burden_fen >= 0),                -- b, step 9
    critical_illness_fen      bigint NOT NULL CHECK (critical_illness_fen >= 0),      -- hifmi_pay
    medical_assistance_fen    bigint NOT NULL CHECK (medical_assistance_fen >= 0),    -- maf_pay
    fund_total_fen            bigint NOT NULL CHECK (fund_total_fen >= 0),            -- fund_pay_sumamt
    personal_account_fen      bigint NOT NULL CHECK (personal_account_fen >= 0),      -- acct_pay
    cash_fen                  bigint NOT NULL CHECK (cash_fen >= 0),                  -- psn_cash_pay
    balance_after_fen         bigint NOT NULL CHECK (balance_after_fen >= 0),         -- balc
    request                   jsonb NOT NULL,   -- the 2207 input
    response                  jsonb NOT NULL,   -- the 2207 output
    settled_at                timestamptz NOT NULL,
    reversal_msgid            text UNIQUE,
    reversed_at               timestamptz,
    CHECK (full_own_pay_fen + over_limit_self_pay_fen + pre_self_pay_fen + in_scope_fen
           = medfee_total_fen),
    CHECK (basic_fund_fen + critical_illness_fen + medical_assistance_fen = fund_total_fen),
    CHECK (fund_total_fen + personal_account_fen + cash_fen = medfee_total_fen),
    CHECK ((state = 'settled' AND reversal_msgid IS NULL AND reversed_at IS NULL)
        OR (state = 'reversed' AND reversal_msgid IS NOT NULL AND reversed_at IS NOT NULL))
);
-- One live settlement per charge batch of a visit: a re-send under a new msgid must
-- not charge the person twice.
CREATE UNIQUE INDEX settlements_live_charge
    ON settlements (psn_no, mdtrt_id, chrg_bchno) WHERE state = 'settled';
CREATE INDEX settlements_person ON settlements (psn_no);

-- Every processed request's answer, by msgid: a repeat with the same content gets the
-- same answer (and no second effect); a different content under the same msgid is refused.
CREATE TABLE msgid_log (
    msgid           text PRIMARY KEY,
    province        text NOT NULL,
    infno           text NOT NULL CHECK (infno ~ '^[0-9]{4}$'),
    request_digest  text NOT NULL CHECK (request_digest ~ '^[0-9a-f]{64}$'),
    infcode         integer NOT NULL CHECK (infcode <= 0),
    response_body   text NOT NULL,   -- the exact envelope answered, re-signed on replay
    created_at      timestamptz NOT NULL DEFAULT now()
);
