"""Aftermath: alert webhooks in, postmortem actions out to the team's tracker, every status change in a ledger."""
