"""Alembic migrations of Vigie's database (accounts, sessions, register). Run by :func:`vigie.core.db.migrate`."""
