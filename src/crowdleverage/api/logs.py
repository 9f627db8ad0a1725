"""Structured logs: one JSON object per line on stderr, with the request id of the HTTP request
being served (if any). Events carry their fields as `extra={"event": ..., ...}`; secrets
(passwords, tokens, keys) are never passed to a logger, and a field named like one is masked.

    configure_logging("info")        # crowdlev serve --log-level info
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_SECRET_WORDS = ("password", "secret", "token", "authorization", "private_key")
LEVELS = ("debug", "info", "warning", "error")


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            out["request_id"] = rid
        for k, v in record.__dict__.items():
            if k in _STANDARD or k.startswith("_"):
                continue
            masked = any(w in k.lower() for w in _SECRET_WORDS)
            out[k] = "***" if masked else v
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(level: str = "warning") -> None:
    """JSON lines on stderr for the `crowdleverage` loggers at `level`."""
    if level not in LEVELS:
        from crowdleverage.domain.errors import InvalidInput

        raise InvalidInput(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    root = logging.getLogger("crowdleverage")
    for h in list(root.handlers):
        if getattr(h, "_crowdlev", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    handler._crowdlev = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
