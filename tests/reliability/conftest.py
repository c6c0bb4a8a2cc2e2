"""Fixtures of the reliability suite; the database fixtures (`database_url`, `postgres_url`) come from tests/conftest.py."""
