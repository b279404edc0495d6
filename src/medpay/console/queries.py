"""SQL for the console's logins, sessions and login attempts (migration 0040)."""

from __future__ import annotations

__all__ = [
    "CLEAR_ATTEMPTS",
    "COUNT_ATTEMPT",
    "LOGIN_BY_USERNAME",
    "NEWER_HASH",
    "OPEN_SESSION",
    "PURGE_OLD_ATTEMPTS",
    "PURGE_OLD_SESSIONS",
    "REVOKE_OPERATOR_SESSIONS",
    "REVOKE_SESSION",
    "SET_LOGIN",
    "TOUCH_SESSION",
]

LOGIN_BY_USERNAME = """
SELECT l.operator_id, l.password_hash, o.name, o.status
  FROM operator_logins l
  JOIN operators o USING (operator_id)
 WHERE l.username = $1
"""

# One login per operator: setting it again changes the username and the password.
SET_LOGIN = """
INSERT INTO operator_logins (operator_id, username, password_hash)
VALUES ($1, $2, $3)
ON CONFLICT (operator_id) DO UPDATE
   SET username = excluded.username, password_hash = excluded.password_hash, changed_at = now()
"""

# Only if the hash is still the one verified (a concurrent change of password wins).
NEWER_HASH = """
UPDATE operator_logins SET password_hash = $3 WHERE operator_id = $1 AND password_hash = $2
"""

# This attempt, counted before the password is checked: a new window once the last has
# passed. Answers the attempts of the window, this one included, and when it ends.
COUNT_ATTEMPT = """
INSERT INTO operator_login_attempts AS a (username, attempts, window_started_at)
VALUES ($1, 1, now())
ON CONFLICT (username) DO UPDATE
   SET attempts = CASE WHEN a.window_started_at <= now() - $2::int * interval '1 second'
                       THEN 1 ELSE a.attempts + 1 END,
       window_started_at = CASE WHEN a.window_started_at <= now() - $2::int * interval '1 second'
                                THEN now() ELSE a.window_started_at END
RETURNING attempts,
          ceil(extract(epoch FROM a.window_started_at + $2::int * interval '1 second' - now()))::int
              AS seconds_left
"""

CLEAR_ATTEMPTS = "DELETE FROM operator_login_attempts WHERE username = $1"

OPEN_SESSION = """
INSERT INTO operator_sessions (token_digest, operator_id, expires_at)
VALUES ($1, $2, now() + $3::int * interval '1 second')
RETURNING session_id
"""

# A live session of an active operator, seen now: one round trip per page.
TOUCH_SESSION = """
UPDATE operator_sessions s
   SET last_seen_at = now()
  FROM operators o, operator_logins l
 WHERE s.token_digest = $1
   AND s.revoked_at IS NULL
   AND s.expires_at > now()
   AND s.last_seen_at > now() - $2::int * interval '1 second'
   AND o.operator_id = s.operator_id
   AND o.status = 'active'
   AND l.operator_id = s.operator_id
RETURNING s.session_id, s.operator_id, o.name AS operator_name, l.username, s.created_at,
          s.expires_at
"""

REVOKE_SESSION = """
UPDATE operator_sessions SET revoked_at = now(), revoked_reason = 'logout'
 WHERE session_id = $1 AND revoked_at IS NULL
"""

REVOKE_OPERATOR_SESSIONS = """
UPDATE operator_sessions SET revoked_at = now(), revoked_reason = 'login_changed'
 WHERE operator_id = $1 AND revoked_at IS NULL
"""

# Ended sessions are kept a month (who was logged in when), then forgotten.
PURGE_OLD_SESSIONS = "DELETE FROM operator_sessions WHERE expires_at < now() - interval '30 days'"

PURGE_OLD_ATTEMPTS = """
DELETE FROM operator_login_attempts WHERE window_started_at < now() - $1::int * interval '1 second'
"""
