"""Aftermath: alert webhooks in, postmortem actions out to the team's tracker, every status change in a ledger."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aftermath")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
