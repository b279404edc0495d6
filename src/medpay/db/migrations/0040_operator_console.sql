-- The operator console (issue 11, item 6): operators log in with a username and a
-- password (argon2id), get a server-side session, and a username that keeps failing is
-- locked out for a while. Signed operator API calls (operator_keys) are unchanged.

-- At most one login per operator; a username is lower case and names one operator.
CREATE TABLE operator_logins (
    operator_id   text PRIMARY KEY REFERENCES operators (operator_id),
    username      text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{2,63}$'),
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    changed_at    timestamptz NOT NULL DEFAULT now()
);

-- A session: the cookie carries a random token (32 bytes); only its SHA-256 is kept, so
-- a copy of this table opens no session. Idle and absolute timeouts are checked on every
-- request (last_seen_at, expires_at); logging out or a changed login revokes it for good.
CREATE TABLE operator_sessions (
    session_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_digest   bytea NOT NULL UNIQUE CHECK (octet_length(token_digest) = 32),
    operator_id    text NOT NULL REFERENCES operators (operator_id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text CHECK (revoked_reason IN ('logout', 'login_changed')),
    CHECK (expires_at > created_at),
    CHECK (last_seen_at >= created_at),
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX operator_sessions_live ON operator_sessions (operator_id) WHERE revoked_at IS NULL;
CREATE INDEX operator_sessions_expiry ON operator_sessions (expires_at);

-- Login attempts per username (known or not, so a lockout says nothing about which
-- usernames exist), counted before the password is checked, in a window from the first.
CREATE TABLE operator_login_attempts (
    username          text PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9._-]{2,63}$'),
    attempts          integer NOT NULL CHECK (attempts >= 1),
    window_started_at timestamptz NOT NULL
);
