"""A local SMTP sink for the demo (aiosmtpd): every mail it receives is kept as an .eml file
under a directory, which the /mails page lists. Not a mail server: it delivers nothing."""

from __future__ import annotations

import email
import email.policy
import itertools
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("crowdleverage.mailsink")


class _Handler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._n = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}-{next(self._n):06d}.eml"
        tmp = self.directory / (name + ".tmp")
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(self.directory / name)  # readers never see half a mail
        log.info("mail captured", extra={"event": "mail_captured", "file": name})
        return "250 Message accepted for delivery"


class MailSink:
    """`start()` listens on host:port (port 0: a free one, in `port` after start)."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.host, self.port = host, port
        self._controller: Any = None

    def start(self) -> MailSink:
        from aiosmtpd.controller import Controller

        if self.port == 0:
            import socket

            with socket.socket() as s:
                s.bind((self.host, 0))
                self.port = int(s.getsockname()[1])
        self._controller = Controller(_Handler(self.directory), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def captured(directory: Path, *, to: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The captured mails, newest first (only those addressed to `to` if given)."""
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.eml"), reverse=True):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        rcpt = str(msg.get("To", ""))
        if to is not None and to.lower() not in rcpt.lower():
            continue
        body = msg.get_body(preferencelist=("plain",))
        out.append({"file": path.name, "to": rcpt, "from": str(msg.get("From", "")),
                    "subject": str(msg.get("Subject", "")), "date": str(msg.get("Date", "")),
                    "event": str(msg.get("X-CrowdLev-Event", "")),
                    "body": body.get_content() if body is not None else ""})  # fmt: skip
        if len(out) >= limit:
            break
    return out
