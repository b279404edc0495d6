-- Foundation: patient apps and their keys, replay protection, idempotency, payment orders.

-- A patient app (channel): a hospital or pharmacy app, a super-app mini-program.
CREATE TABLE apps (
    app_id      text PRIMARY KEY CHECK (app_id ~ '^[A-Za-z0-9_-]{3,64}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    webhook_url text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Public keys an app signs with; several may be active at once, for rotation.
CREATE TABLE app_keys (
    key_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id         text NOT NULL REFERENCES apps (app_id),
    algorithm      text NOT NULL CHECK (algorithm IN ('ed25519', 'ecdsa-p256')),
    public_key_pem text NOT NULL,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX app_keys_active ON app_keys (app_id) WHERE status = 'active';

-- Nonces seen within the signature window; the primary key is the replay check,
-- so it holds across every gateway process sharing the database.
CREATE TABLE request_nonces (
    app_id  text NOT NULL,
    nonce   text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, nonce)
);
CREATE INDEX request_nonces_seen_at ON request_nonces (seen_at);

-- The first outcome of each POST under an Idempotency-Key, per app.
CREATE TABLE idempotency_keys (
    app_id          text NOT NULL,
    idempotency_key text NOT NULL,
    request_digest  text NOT NULL,
    state           text NOT NULL DEFAULT 'in_progress' CHECK (state IN ('in_progress', 'completed')),
    response_status integer CHECK (response_status BETWEEN 100 AND 599),
    response_body   bytea,
    response_type   text,
    locked_at       timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (app_id, idempotency_key),
    CHECK (state = 'in_progress' OR (response_status IS NOT NULL AND response_body IS NOT NULL))
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

-- A payment order from a patient app. Amounts are integer fen.
CREATE TABLE payments (
    payment_id               uuid PRIMARY KEY,
    app_id                   text NOT NULL REFERENCES apps (app_id),
    idempotency_key          text NOT NULL,
    request_digest           text NOT NULL,                 -- of the request first made under the key
    psn_no                   text NOT NULL,                 -- psn_no
    institution_code         text NOT NULL,                 -- fixmedins_code
    treatment_area           text NOT NULL CHECK (treatment_area ~ '^[0-9]{6}$'),  -- mdtrtarea_admvs
    visit_type               text NOT NULL CHECK (visit_type IN ('online_revisit', 'pharmacy_purchase', 'home_nursing')),
    prescription_id          text,
    personal_account_allowed boolean NOT NULL,              -- acct_used_flag
    medical_fee_total_fen    bigint NOT NULL CHECK (medical_fee_total_fen >= 0),  -- medfee_sumamt
    state                    text NOT NULL CHECK (state IN
                                 ('received', 'settling', 'settled', 'reversing', 'reversed', 'failed', 'unknown')),
    failure_code             text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, idempotency_key)
);
CREATE INDEX payments_person ON payments (psn_no, created_at);

-- The fee items of a payment order, as the app sent them.
CREATE TABLE payment_items (
    payment_id     uuid NOT NULL REFERENCES payments (payment_id),
    line_no        integer NOT NULL CHECK (line_no >= 1),
    item_code      text NOT NULL,                           -- med_list_codg
    quantity       integer NOT NULL CHECK (quantity > 0),   -- cnt
    unit_price_fen bigint NOT NULL CHECK (unit_price_fen >= 0),  -- pric
    total_fen      bigint NOT NULL CHECK (total_fen = quantity * unit_price_fen),  -- det_item_fee_sumamt
    PRIMARY KEY (payment_id, line_no)
);
