"""Errors shared by every Vigie service.

Each class says whether retrying the same operation may succeed (``retriable``);
retry loops read that flag instead of guessing from the type.
"""

from __future__ import annotations


class VigieError(Exception):
    """Base of all Vigie errors."""

    retriable: bool = False


class ConfigError(VigieError):
    """A configuration file or value is invalid; the message names the field (and line)."""


class MalformedMessage(VigieError):
    """A Kafka record could not be decoded into its topic's contract; goes to the dead-letter topic."""


class BrokerUnavailable(VigieError):
    """The Kafka broker could not be reached; retrying later may succeed."""

    retriable = True


class DatabaseUnavailable(VigieError):
    """The database (accounts, sessions, register) cannot be reached or refuses writes (read-only, full);
    retrying later may succeed. The message names the database by its redacted URL and gives the
    driver's reason (:func:`vigie.core.db.describe_db_error`)."""

    retriable = True
