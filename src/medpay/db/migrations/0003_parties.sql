-- Parties that call the gateway besides patient apps, each proving itself with its
-- own keys: insurance agencies (DOMAIN.md section 1; relationship transfers, filings)
-- and medpay's own operators (registries, reconciliation, clearing).

CREATE TABLE agencies (
    agency_id  text PRIMARY KEY CHECK (agency_id ~ '^[A-Za-z0-9_-]{3,64}$'),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    area       text NOT NULL CHECK (area ~ '^[1-6][0-9]{5}$'),  -- the coordination area it runs (admdvs)
    status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agency_keys (
    key_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id      text NOT NULL REFERENCES agencies (agency_id),
    algorithm      text NOT NULL CHECK (algorithm IN ('ed25519', 'ecdsa-p256')),
    public_key_pem text NOT NULL,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE operators (
    operator_id text PRIMARY KEY CHECK (operator_id ~ '^[A-Za-z0-9_-]{3,64}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE operator_keys (
    key_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operator_id    text NOT NULL REFERENCES operators (operator_id),
    algorithm      text NOT NULL CHECK (algorithm IN ('ed25519', 'ecdsa-p256')),
    public_key_pem text NOT NULL,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at     timestamptz NOT NULL DEFAULT now()
);
