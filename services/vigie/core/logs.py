"""Structured logs: one JSON object per line on stderr, with the service name.

Fields passed with ``extra={...}`` are added to the object. The environment and
secrets are never logged: every line goes through :func:`vigie.core.secrets.redact`
(passwords in camera URLs), whatever the message, its fields or its traceback hold.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from vigie.core.secrets import redact

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as ``{"ts": ..., "level": ..., "service": ..., "logger": ..., "msg": ...}``."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


def logging_config(service: str, level: str = "INFO") -> dict:
    """The same set-up as a :func:`logging.config.dictConfig` dictionary (for frameworks that take one)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "service": service}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {"aiokafka": {"level": "WARNING"}},
    }


def setup_logging(service: str, level: str = "INFO") -> None:
    """Route the root logger to stderr as JSON lines for ``service``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
