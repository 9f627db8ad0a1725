"""Notifications: the in-app notification centre and mail, derived from the platform's events
exactly once.

Sources, each with a stable event key:
- the engine's and liquidator's chain events (`chain:<seq>`): margin warning, automatic top-up,
  liquidation started and ended. The keeper re-marks a waiting liquidation at every tick (a new
  `LiquidationStarted` each time): a start is keyed `liquidation:<account>:<n>`, n the number
  of the account's liquidations that ended before it, so each liquidation notifies once;
- the user's statement lines (`line:<n>`, append-only): fills (buy, sell, liquidation sell) and
  payouts (withdrawal paid out, redemption paid).

A notification is inserted with a unique (user, event key) in the same transaction that moves
the deriver's cursor, so a restart or a replay of the same events inserts nothing twice. Mail
is sent at most once per notification: a conditional update claims it (`pending → sending`,
one transaction for a round's mails) before the SMTP call; a crash in between leaves it
`sending` (no duplicate mail).

Texts are rendered from the stored parameters in the reader's language (zh-CN default).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import smtplib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.header import Header
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crowdleverage.chain.margin import margin_events
from crowdleverage.custody.db import write_transaction
from crowdleverage.domain.errors import InvalidInput
from crowdleverage.domain.money import format_yuan
from crowdleverage.flows.platform import Platform
from crowdleverage.web.i18n_reports import kind_label, tr

log = logging.getLogger("crowdleverage.notify")

KINDS = ("margin_warning", "top_up", "liquidation_started", "liquidation_ended", "fill", "payout")
LANGS = ("zh", "en")
FILL_LINES = ("buy", "sell", "liquidation_sell")
PAYOUT_LINES = ("withdrawal", "redeemed")
CHAIN_KINDS = {"MarginWarning": "margin_warning", "ToppedUp": "top_up",
               "LiquidationStarted": "liquidation_started",
               "LiquidationEnded": "liquidation_ended"}  # fmt: skip

meta = sa.MetaData()
notifications = sa.Table(
    "notifications",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("event_key", sa.String(80), nullable=False),  # chain:<seq> | line:<n>
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("account_id", sa.BigInteger, nullable=True),
    sa.Column("params", sa.Text, nullable=False),  # JSON: what the texts are made of
    sa.Column("trade_date", sa.String(10), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("in_app", sa.Boolean, nullable=False),
    sa.Column("read", sa.Boolean, nullable=False, default=False),
    # none (not wanted or no SMTP) | pending | sending | sent | failed
    sa.Column("email_status", sa.String(12), nullable=False),
    sa.UniqueConstraint("user_id", "event_key", name="uq_notification_event"),
)
prefs_table = sa.Table(
    "notify_prefs",
    meta,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("lang", sa.String(5), nullable=False),
    sa.Column("email", sa.String(254), nullable=True),
    sa.Column("in_app", sa.Text, nullable=False),  # JSON list of kinds
    sa.Column("by_email", sa.Text, nullable=False),  # JSON list of kinds
)
cursors = sa.Table(
    "notify_cursor",
    meta,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True)
class Prefs:
    user_id: int
    lang: str = "zh"
    email: str | None = None
    in_app: tuple[str, ...] = KINDS
    by_email: tuple[str, ...] = KINDS

    def as_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "lang": self.lang, "email": self.email,
                "in_app": list(self.in_app), "by_email": list(self.by_email)}  # fmt: skip


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def render(kind: str, params: dict[str, Any], lang: str) -> tuple[str, str]:
    """(title, message) of a notification in `lang`."""
    p = dict(params)
    for k in ("amount_fen", "price_fen"):
        if k in p:
            p[k[:-4]] = format_yuan(int(p[k]))
    if "ratio_bps" in p:
        p["ratio"] = f"{int(p['ratio_bps']) / 100:.2f}%"
    if kind == "fill":
        p["side"] = kind_label(lang, str(p.get("line_kind", "")))
    if kind == "payout":
        p["what"] = kind_label(lang, str(p.get("line_kind", "")))
    return tr(lang, f"ev_{kind}"), tr(lang, f"msg_{kind}", **p)


class Notifier:
    """The notification store, the deriver (`derive`) and the mailer (`deliver`)."""

    def __init__(
        self,
        engine: Engine,
        *,
        smtp_host: str | None = None,
        smtp_port: int = 25,
        smtp_from: str = "noreply@crowdlev.local",
        default_email: Any = None,
    ) -> None:
        self.engine = engine
        self.smtp_host, self.smtp_port, self.smtp_from = smtp_host, smtp_port, smtp_from
        self.default_email = default_email  # user id → address, for users with no preference
        meta.create_all(engine)
        self._derive_lock = threading.Lock()

    # ----------------------------------------------------------------- preferences

    def prefs(self, user_id: int) -> Prefs:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(prefs_table).where(prefs_table.c.user_id == user_id)
            ).first()
        if row is None:
            email = self.default_email(user_id) if self.default_email is not None else None
            return Prefs(user_id, email=email)
        return Prefs(user_id, row.lang, row.email, tuple(json.loads(row.in_app)),
                     tuple(json.loads(row.by_email)))  # fmt: skip

    def set_prefs(self, p: Prefs) -> Prefs:
        if p.lang not in LANGS:
            raise InvalidInput(f"lang must be one of {', '.join(LANGS)}")
        bad = sorted({k for k in (*p.in_app, *p.by_email) if k not in KINDS})
        if bad:
            raise InvalidInput(f"unknown notification kinds: {', '.join(bad)}")
        if p.email is not None and ("@" not in p.email or len(p.email) > 254 or "\n" in p.email):
            raise InvalidInput("email is not a mail address")
        row = {"user_id": p.user_id, "lang": p.lang, "email": p.email,
               "in_app": json.dumps(sorted(set(p.in_app))),
               "by_email": json.dumps(sorted(set(p.by_email)))}  # fmt: skip
        with write_transaction(self.engine) as conn:
            conn.execute(prefs_table.delete().where(prefs_table.c.user_id == p.user_id))
            conn.execute(prefs_table.insert(), row)
        return self.prefs(p.user_id)

    # ----------------------------------------------------------------------- reading

    def page(
        self, user_id: int, *, limit: int = 50, offset: int = 0, lang: str = "zh"
    ) -> tuple[list[dict[str, Any]], int, int]:
        """(items newest first with texts in `lang`, total, unread) of the in-app centre."""
        n = notifications.c
        where = sa.and_(n.user_id == user_id, n.in_app.is_(True))
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(notifications).where(where).order_by(n.id.desc())
                .limit(limit).offset(offset)
            ).all()  # fmt: skip
            total = conn.execute(sa.select(sa.func.count()).where(where)).scalar_one()
            unread = conn.execute(
                sa.select(sa.func.count()).where(where, n.read.is_(False))
            ).scalar_one()
        items = []
        for r in rows:
            params = json.loads(r.params)
            title, message = render(r.kind, params, lang)
            items.append({"id": r.id, "event_key": r.event_key, "kind": r.kind,
                          "account_id": r.account_id, "trade_date": r.trade_date,
                          "created_at": r.created_at, "read": r.read, "title": title,
                          "message": message, "email_status": r.email_status,
                          "params": params})  # fmt: skip
        return items, int(total), int(unread)

    def mark_read(self, user_id: int, ids: list[int] | None) -> int:
        n = notifications.c
        stmt = notifications.update().where(n.user_id == user_id, n.read.is_(False))
        if ids is not None:
            stmt = stmt.where(n.id.in_(ids))
        with write_transaction(self.engine) as conn:
            return int(conn.execute(stmt.values(read=True)).rowcount)

    def counts_on(self, trade_date: str) -> dict[str, int]:
        n = notifications.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(n.kind, sa.func.count()).where(n.trade_date == trade_date)
                .group_by(n.kind)
            ).all()  # fmt: skip
        return {str(k): int(c) for k, c in rows}

    def liquidation_since(self) -> dict[int, dict[str, str]]:
        """Accounts whose latest liquidation notification is a start: when it started."""
        n = notifications.c
        kinds = ("liquidation_started", "liquidation_ended")
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(n.account_id, n.kind, n.trade_date, n.created_at)
                .where(n.kind.in_(kinds)).order_by(n.id)
            ).all()  # fmt: skip
        last: dict[int, Any] = {}
        for r in rows:
            last[int(r.account_id)] = r
        return {a: {"trade_date": r.trade_date, "at": r.created_at}
                for a, r in last.items() if r.kind == "liquidation_started"}  # fmt: skip

    # ------------------------------------------------------------------------ deriving

    def derive(self, p: Platform) -> int:
        """Turn the platform's new events into notifications; returns how many were new."""
        with self._derive_lock:
            new = self._derive_chain(p)
            with p.lock:
                users = [u for u in p.history]
            for uid in users:
                new += self._derive_lines(p, uid)
            return new

    def _cursor(self, conn: sa.Connection, name: str) -> int:
        v = conn.execute(sa.select(cursors.c.value).where(cursors.c.name == name)).scalar()
        return int(v or 0)

    @staticmethod
    def _set_cursor(conn: sa.Connection, name: str, value: int) -> None:
        conn.execute(cursors.delete().where(cursors.c.name == name))
        conn.execute(cursors.insert(), {"name": name, "value": value})

    def _derive_chain(self, p: Platform) -> int:
        with self.engine.connect() as conn:
            since = self._cursor(conn, "chain")
        with p.lock:
            evs = [e for e in margin_events(p.chain, since=since) if e.event in CHAIN_KINDS]
            owners = {p.fin.address(u).lower(): u for u in p.s.enrolled}
            account_of = {a.owner_id: a.id for a in p.accounts.values()}
            today = p.market.today.isoformat()
            head = max((e.seq for e in evs), default=since)
            ends = [(e.seq, str(e.args.get("account", "")).lower())
                    for e in margin_events(p.chain, "LiquidationEnded")] if evs else []  # fmt: skip
        items = []
        for e in evs:
            who = str(e.args.get("account", "")).lower()
            uid = owners.get(who)
            if uid is None or uid not in account_of:
                continue
            key = f"chain:{e.seq}"
            if e.event == "LiquidationStarted":
                # the keeper re-marks a waiting liquidation at every tick: one notification
                # per liquidation, keyed by how many liquidations of the account ended before
                episode = sum(1 for seq, a in ends if a == who and seq < e.seq)
                key = f"liquidation:{account_of[uid]}:{episode}"
            params: dict[str, Any] = {"account_id": account_of[uid]}
            for k in ("ratio_bps", "amount_fen", "shortfall_fen"):
                if k in e.args:
                    params[k] = int(e.args[k])
            if "shortfall_fen" in params:
                params["amount_fen"] = params.pop("shortfall_fen")
            items.append((uid, key, CHAIN_KINDS[e.event], params, today))
        return self._insert(items, {"chain": head})

    def _derive_lines(self, p: Platform, uid: int) -> int:
        name = f"lines:{uid}"
        with self.engine.connect() as conn:
            done = self._cursor(conn, name)
        with p.lock:
            lines = list(p.history.get(uid, [])[done:])
        if not lines:
            return 0
        items = []
        for i, x in enumerate(lines, start=done + 1):
            kind = x["kind"]
            if kind in FILL_LINES:
                params = {"line_kind": kind, "code": x.get("code"), "quantity": x.get("quantity"),
                          "price_fen": x.get("price_fen"), "amount_fen": abs(x["amount_fen"]),
                          "account_id": x.get("account_id")}  # fmt: skip
                items.append((uid, f"line:{i}", "fill", params, x["trade_date"]))
            elif kind in PAYOUT_LINES:
                fen = abs(int(x.get("paid_fen", x["amount_fen"])))
                params = {"line_kind": kind, "amount_fen": fen}
                items.append((uid, f"line:{i}", "payout", params, x["trade_date"]))
        return self._insert(items, {name: done + len(lines)})

    def _insert(self, items: list[tuple[int, str, str, dict[str, Any], str]],
                moves: dict[str, int]) -> int:  # fmt: skip
        """Insert the notifications not yet stored and move the cursors, in one transaction."""
        n = notifications.c
        new = 0
        prefs: dict[int, Prefs] = {}
        with write_transaction(self.engine) as conn:
            for uid, key, kind, params, day in items:
                if conn.execute(
                    sa.select(n.id).where(n.user_id == uid, n.event_key == key)
                ).first():
                    continue  # already derived (a replay of the same event, a re-mark)
                acc = params.get("account_id")
                pr = prefs.get(uid) or prefs.setdefault(uid, self.prefs(uid))
                mail = kind in pr.by_email and pr.email is not None and bool(self.smtp_host)
                conn.execute(notifications.insert(), {
                    "user_id": uid, "event_key": key, "kind": kind, "account_id": acc,
                    "params": json.dumps(params, ensure_ascii=False), "trade_date": day,
                    "created_at": _now(), "in_app": kind in pr.in_app, "read": False,
                    "email_status": "pending" if mail else "none",
                })  # fmt: skip
                new += 1
                log.info("notification", extra={"event": "notification", "kind": kind,
                                                "user_id": uid, "key": key})  # fmt: skip
            for name, value in moves.items():
                self._set_cursor(conn, name, value)
        return new

    # -------------------------------------------------------------------------- mailing

    def deliver(self, limit: int = 100, before_each: Callable[[], object] | None = None) -> int:
        """Send the pending mails (at most once each); returns how many were sent.
        `before_each`: called before each mail (the platform process's worker waits there
        for its writer to be idle)."""
        if not self.smtp_host:
            return 0
        n = notifications.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(notifications).where(n.email_status == "pending")
                .order_by(n.id).limit(limit)
            ).all()  # fmt: skip
        if not rows:
            return 0
        # one transaction claims the round's mails (pending -> sending) and one records how
        # they went: two commits a round, not two a mail (the platform process's commands
        # wait for the same write lock)
        claimed = []
        with write_transaction(self.engine) as conn:
            for r in rows:
                if (
                    conn.execute(
                        notifications.update()
                        .where(n.id == r.id, n.email_status == "pending")
                        .values(email_status="sending")
                    ).rowcount
                    == 1
                ):
                    claimed.append(r)
        sent = 0
        outcome: dict[int, str] = {}
        smtp: smtplib.SMTP | None = None  # one connection for the round's mails
        prefs: dict[int, Prefs] = {}  # each recipient's read once a round
        try:
            for r in claimed:
                status = "sent"
                if before_each is not None:
                    before_each()
                try:
                    if smtp is None:
                        smtp = self._connect()
                    uid = int(r.user_id)
                    pr = prefs.get(uid) or prefs.setdefault(uid, self.prefs(uid))
                    self._send(r, smtp, pr)
                    sent += 1
                except (OSError, smtplib.SMTPException) as exc:
                    status = "failed"
                    log.warning("mail failed", extra={"event": "mail_failed", "id": r.id,
                                                      "error": str(exc)})  # fmt: skip
                    if smtp is not None and not isinstance(exc, smtplib.SMTPRecipientsRefused):
                        self._hang_up(smtp)  # the next mail opens a new connection
                        smtp = None
                outcome[r.id] = status
        finally:  # what was tried is recorded even when a later mail raises
            if smtp is not None:
                self._hang_up(smtp)
            if outcome:
                with write_transaction(self.engine) as conn:
                    for row_id, status in outcome.items():
                        conn.execute(notifications.update().where(n.id == row_id)
                                     .values(email_status=status))  # fmt: skip
        return sent

    @property
    def _domain(self) -> str:
        """The sender's domain: the Message-ID's and the SMTP greeting's (not the host's
        name, which `socket.getfqdn` would look up for every mail)."""
        return self.smtp_from.rpartition("@")[2] or "crowdlev.local"

    def _connect(self) -> smtplib.SMTP:
        assert self.smtp_host is not None
        return smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=10,
                            local_hostname=self._domain)  # fmt: skip

    @staticmethod
    def _hang_up(smtp: smtplib.SMTP) -> None:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()

    def _send(self, r: Any, smtp: smtplib.SMTP, pr: Prefs) -> None:
        """One mail: text/plain in UTF-8, the subject RFC 2047-encoded. Built with the
        `email.mime` classes (the body base64) and sent with `sendmail` and explicit addresses:
        the same headers and text as `EmailMessage` and `send_message`, for about a fifth of
        the CPU (they parse every address header again; the mail thread shares the
        interpreter's lock with the writer)."""
        if pr.email is None:
            raise smtplib.SMTPRecipientsRefused({})
        title, message = render(r.kind, json.loads(r.params), pr.lang)
        msg = MIMEText(f"{message}\n\n{tr(pr.lang, 'trade_date')}: {r.trade_date}\n", "plain",
                       "utf-8")  # fmt: skip
        msg["From"] = self.smtp_from
        msg["To"] = pr.email
        # a Header, not its encoded text: the message folds it after "Subject: " (the text,
        # folded on its own, would start on a line of its own and decode with a leading space)
        subject = Header(f"[{tr(pr.lang, 'title')}] {title}", "utf-8")
        msg["Subject"] = subject  # type: ignore[assignment]  # compat32 takes a Header
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(idstring=f"{r.user_id}.{r.event_key.replace(':', '.')}",
                                       domain=self._domain)  # fmt: skip
        msg["X-CrowdLev-Event"] = f"{r.user_id}/{r.event_key}"
        smtp.sendmail(self.smtp_from, [pr.email], msg.as_bytes())


class NotifyWorker(threading.Thread):
    """In the platform process: derive notifications and send mail every `interval_s`.

    `idle` (the platform process's writer: set while it has nothing to do): each mail waits
    for it up to `IDLE_WAIT_S`. A mail costs the process a few milliseconds of Python
    (the message, the SMTP dialogue) and shares the interpreter's lock with the writer: sent
    in a burst while commands ran, a round's mails (one per withdrawal) held the commands up
    (bench/api.py: the mail thread took 28% of the process's samples)."""

    IDLE_WAIT_S = 0.5  # a busy writer delays each mail this long at most (mail still flows)

    def __init__(
        self,
        notifier: Notifier,
        platform: Platform,
        interval_s: float = 1.0,
        idle: threading.Event | None = None,
    ) -> None:
        super().__init__(name="notify", daemon=True)
        self.notifier, self.platform, self.interval_s = notifier, platform, interval_s
        self.idle = idle
        self.stop = threading.Event()

    def run_once(self) -> None:
        self.notifier.derive(self.platform)
        idle = self.idle
        self.notifier.deliver(
            before_each=None if idle is None else lambda: idle.wait(self.IDLE_WAIT_S)
        )

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            try:
                self.run_once()
            except Exception:  # keep deriving; the next round retries from the cursor
                log.exception("notification round failed")
