"""Pure routing domain: units, rules, matching, calendar and the task state machine (stdlib only)."""
