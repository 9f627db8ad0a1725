"""The report services of a running API (`ApiState`): built on first use from its settings,
or installed explicitly (`install_notifier`, e.g. pointed at a test's SMTP sink)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from crowdleverage.domain.errors import NotFound
from crowdleverage.reports.attest import Attestations
from crowdleverage.reports.notify import Notifier, NotifyWorker

DEMO_MAIL_DOMAIN = "demo.crowdlev.local"


def mail_dir(data_dir: Path) -> Path:
    """Where the demo's SMTP sink keeps the mails it captured."""
    return data_dir / "mailsink"


def notifier_of(st: Any) -> Notifier:
    n = getattr(st, "_notifier", None)
    if n is None:
        s = st.settings
        n = Notifier(st.engine, smtp_host=s.smtp_host, smtp_port=s.smtp_port,
                     smtp_from=s.smtp_from, default_email=_default_email(st))  # fmt: skip
        st._notifier = n
    return n


def install_notifier(st: Any, notifier: Notifier) -> Notifier:
    st._notifier = notifier
    return notifier


def _default_email(st: Any) -> Any:
    """Users without a saved address get `<username>@demo.crowdlev.local` (the demo sink
    captures them); set an address in the preferences for real mail."""

    def email(user_id: int) -> str | None:
        try:
            return f"{st.users.get(user_id).username}@{DEMO_MAIL_DOMAIN}"
        except NotFound:  # a platform-only id: no mail
            return None

    return email


def attestations_of(st: Any) -> Attestations:
    a = getattr(st, "_attestations", None)
    if a is None:
        a = Attestations(st.engine, st.settings.ensure_data_dir())
        st._attestations = a
    return a


def start_notify_worker(
    st: Any, interval_s: float = 1.0, idle: threading.Event | None = None
) -> NotifyWorker:
    """In the platform process: derive notifications and send mail in the background (each
    mail when `idle` is set, or after `NotifyWorker.IDLE_WAIT_S`: the writer's idle flag)."""
    worker = NotifyWorker(notifier_of(st), st.platform, interval_s, idle)
    worker.start()
    return worker
