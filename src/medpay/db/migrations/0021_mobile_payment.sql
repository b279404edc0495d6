-- The national mobile-payment interface (DOMAIN.md section 8): apps built against it,
-- and the orders they upload (6201) before paying them (6202).

-- An app's credentials on the national interface. Its appId is its app_id (16 to 64
-- letters and digits, as the interface requires); its SM2 public key is in app_keys
-- (algorithm 'sm2'). The appSecret is needed in the clear to check signatures (the
-- signed string ends with it) and to derive the SM4 key, so it is kept sealed
-- (AES-256-GCM under the gateway's key, bound to app_id), never in the clear.
CREATE TABLE app_mobile_credentials (
    app_id            text PRIMARY KEY REFERENCES apps (app_id)
                      CHECK (app_id ~ '^[0-9A-Za-z]{16,64}$'),
    app_secret_sealed bytea NOT NULL CHECK (length(app_secret_sealed) > 29),
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- A fee upload (6201): the order a later 6202 settles through the payment flow, under
-- the payment Idempotency-Key 'mobile:' || pay_ord_id. 'uploaded' may be cancelled
-- (6401); 'submitted' has been handed to the payment flow and is never cancelled.
CREATE TABLE mobile_orders (
    pay_ord_id            text PRIMARY KEY CHECK (pay_ord_id ~ '^ORD[0-9]{14}[0-9A-F]{16}$'),
    app_id                text NOT NULL REFERENCES apps (app_id),
    med_org_ord           text NOT NULL CHECK (med_org_ord ~ '^[0-9A-Za-z_-]{1,64}$'),  -- medOrgOrd
    upload_digest         text NOT NULL CHECK (upload_digest ~ '^[0-9a-f]{64}$'),
    psn_no                text NOT NULL,                                  -- psn_no
    pay_auth_id           text NOT NULL,            -- SHA-256 of the issuer and jti of its payAuthNo
    payment_order         jsonb NOT NULL,           -- the order, our names, integer fen
    medical_fee_total_fen bigint NOT NULL CHECK (medical_fee_total_fen >= 0),  -- medfee_sumamt
    state                 text NOT NULL DEFAULT 'uploaded'
                          CHECK (state IN ('uploaded', 'submitted', 'cancelled')),
    refund_sn             text CHECK (refund_sn ~ '^[0-9A-Za-z_-]{1,64}$'),  -- appRefdSn, once
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, med_org_ord),  -- a repeated 6201 finds the first upload
    UNIQUE (pay_auth_id)           -- one payment authorisation, one order
);
