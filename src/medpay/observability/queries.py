"""The one statement a scrape runs: the backlogs of the resolver and of the outbox.

Read-only, over the partial indexes ``payments_unfinished`` and
``notification_outbox_pending`` (their ``WHERE`` is repeated here so the planner uses
them), so its cost follows the backlog, not the tables.
"""

from __future__ import annotations

__all__ = ["BACKLOG", "UNRESOLVED_STATES"]

#: The states the resolver finishes (payments.states.UNFINISHED_STATES), in the index's terms.
UNRESOLVED_STATES = ("received", "settling", "unknown", "reversing")

# $1: the settle grace in seconds. An ``unknown`` payment is backlog at once; the others
# once they have stayed in their state longer than the grace.
BACKLOG = """
SELECT 'payment' AS kind, state, count(*) AS n,
       coalesce(extract(epoch FROM now() - min(updated_at)), 0)::float8 AS oldest_s
  FROM payments
 WHERE state IN ('received', 'settling', 'unknown', 'reversing')
   AND (state = 'unknown' OR updated_at < now() - make_interval(secs => $1))
 GROUP BY state
UNION ALL
SELECT 'outbox', 'pending', count(*),
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
  FROM notification_outbox
 WHERE delivered_at IS NULL
"""
