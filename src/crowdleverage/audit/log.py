"""Tamper-evident audit log: every operator and compliance action, hash-chained and signed.

Entry n stores `entry_hash = sha256(canonical JSON of seq, ts_ns, actor, action, payload,
prev_hash)` with `prev_hash` = entry n-1's hash, and a secp256k1 signature of that hash by the
platform's audit key. `verify` recomputes everything:

- an edited entry changes its hash (or, if the hash was recomputed, breaks its signature and
  the next entry's `prev_hash`);
- a deleted or reordered entry breaks the sequence and the chain of `prev_hash`;
- a deleted *tail* leaves a valid shorter chain, so every append also writes a signed head
  checkpoint (seq, hash) outside the database; `verify` checks the log reaches it.

The key lives in `<data_dir>/audit_signing.key` (mode 0600) and is created on first use; the
verifier trusts the addresses in `<data_dir>/audit_signers.json` (the key's own address is
written there on creation; an auditor keeps their own copy).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from eth_keys import keys
from eth_keys.exceptions import BadSignature, ValidationError
from sqlalchemy.engine import Engine

from crowdleverage.custody.db import on_commit, write_transaction
from crowdleverage.domain.errors import ConfigError, InvalidInput

metadata = sa.MetaData()
GENESIS = "0" * 64

log_table = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ts_ns", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(128), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # canonical JSON
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("signer", sa.String(42), nullable=False),
    sa.Column("signature", sa.String(132), nullable=False),
)
# `AuditLog.append_many`'s statements, built once (an append per command batch)
_LAST = sa.select(log_table.c.seq, log_table.c.entry_hash).order_by(log_table.c.seq.desc()).limit(1)
_INSERT = log_table.insert()


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def entry_hash(seq: int, ts_ns: int, actor: str, action: str, payload: str, prev_hash: str) -> str:
    body = canonical(
        {"seq": seq, "ts_ns": ts_ns, "actor": actor, "action": action, "payload": payload,
         "prev_hash": prev_hash}
    )  # fmt: skip
    return hashlib.sha256(body.encode()).hexdigest()


class Signer:
    """The audit key: signs entry hashes; its address identifies it to verifiers."""

    def __init__(self, private_key: bytes) -> None:
        self._key = keys.PrivateKey(private_key)
        self.address = self._key.public_key.to_checksum_address()

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Signer:
        key_file = data_dir / "audit_signing.key"
        if key_file.exists():
            try:
                return cls(bytes.fromhex(key_file.read_text().strip()))
            except (ValueError, ValidationError) as exc:
                raise ConfigError(f"{key_file} does not hold a 32-byte hex key") from exc
        data_dir.mkdir(parents=True, exist_ok=True)
        raw = os.urandom(32)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(raw.hex())
        signer = cls(raw)
        trust_file = data_dir / "audit_signers.json"
        trusted = set(load_trusted(data_dir)) | {signer.address}
        fd = os.open(trust_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(sorted(trusted)))
        return signer

    def sign(self, digest_hex: str) -> str:
        return self._key.sign_msg_hash(bytes.fromhex(digest_hex)).to_hex()


def load_trusted(data_dir: Path) -> list[str]:
    f = data_dir / "audit_signers.json"
    return list(json.loads(f.read_text())) if f.exists() else []


def recover_signer(digest_hex: str, signature_hex: str) -> str | None:
    try:
        sig = keys.Signature(bytes.fromhex(signature_hex.removeprefix("0x")))
        return sig.recover_public_key_from_msg_hash(bytes.fromhex(digest_hex)).to_checksum_address()
    except (ValueError, BadSignature, ValidationError):
        return None


@dataclass(frozen=True, slots=True)
class LogEntry:
    seq: int
    ts_ns: int
    actor: str
    action: str
    payload: dict[str, Any]
    entry_hash: str


@dataclass
class VerifyReport:
    entries: int = 0
    head_seq: int | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "head_seq": self.head_seq,
                "problems": self.problems}  # fmt: skip


class AuditLog:
    def __init__(self, engine: Engine, data_dir: Path, *, signer: Signer | None = None) -> None:
        self.engine = engine
        self.data_dir = data_dir
        self._signer = signer
        self.head_file = data_dir / "audit_head.json"

    @property
    def signer(self) -> Signer:
        """The signing key, loaded (or created) on first append: verifying creates nothing."""
        if self._signer is None:
            self._signer = Signer.load_or_create(self.data_dir)
        return self._signer

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def append(self, actor: str, action: str, payload: dict[str, Any]) -> LogEntry:
        """Append one action; serialised with every other writer."""
        return self.append_many([(actor, action, payload)])[0]

    def append_many(self, items: list[tuple[str, str, dict[str, Any]]]) -> list[LogEntry]:
        """Append actions (actor, action, payload) in order, in one write transaction: each
        its own signed, hash-chained entry, as one `append` after another would write them."""
        bodies = []
        for actor, action, payload in items:
            if not actor.strip() or not action.strip():
                raise InvalidInput("an audit entry needs an actor and an action")
            try:
                bodies.append(canonical(payload))
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"audit payload is not JSON: {exc}") from exc
        out: list[LogEntry] = []
        with write_transaction(self.engine) as conn:
            last = conn.execute(_LAST).first()
            seq, prev = (last.seq, last.entry_hash) if last else (0, GENESIS)
            rows = []
            for (actor, action, payload), body in zip(items, bodies, strict=True):
                seq += 1
                ts_ns = time.time_ns()
                digest = entry_hash(seq, ts_ns, actor, action, body, prev)
                rows.append(
                    {"seq": seq, "ts_ns": ts_ns, "actor": actor, "action": action,
                     "payload": body, "prev_hash": prev, "entry_hash": digest,
                     "signer": self.signer.address, "signature": self.signer.sign(digest)}
                )  # fmt: skip
                out.append(LogEntry(seq, ts_ns, actor, action, payload, digest))
                prev = digest
            if rows:
                conn.execute(_INSERT, rows)
        if out:
            # After the commit: a crash in between leaves the head behind (verify still
            # passes); a head ahead of the log can only mean entries were removed. Inside a
            # group commit the head moves at the group's end (once, to the group's last entry;
            # the platform's writer: after the group's answers are stored, `Group.defer_after`).
            head_seq, head = out[-1].seq, out[-1].entry_hash
            on_commit(self.engine, "audit_head", lambda: self._write_head(head_seq, head))
        return out

    def _write_head(self, seq: int, digest: str) -> None:
        """Move the head forward to (seq, digest), never back: concurrent appenders (threads
        or processes) take a file lock, and an older entry does not overwrite a newer head."""
        head = {
            "seq": seq,
            "entry_hash": digest,
            "signature": self.signer.sign(_head_digest(seq, digest)),
        }
        lock_fd = os.open(self.data_dir / "audit_head.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            current = self._read_head()
            if current is not None and int(current["seq"]) >= seq:
                return
            tmp = self.head_file.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(head))
            os.replace(tmp, self.head_file)
        finally:
            os.close(lock_fd)  # releases the lock

    def entries(self) -> list[LogEntry]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(log_table).order_by(log_table.c.seq)).all()
        return [
            LogEntry(r.seq, r.ts_ns, r.actor, r.action, json.loads(r.payload), r.entry_hash)
            for r in rows
        ]

    def verify(self, trusted: list[str] | None = None) -> VerifyReport:
        trusted_set = set(trusted if trusted is not None else load_trusted(self.data_dir))
        report = VerifyReport()
        if not trusted_set:
            report.problems.append({"seq": None, "problem": "no trusted audit signer configured"})
        prev, expected_seq = GENESIS, 1
        # The head first, then the rows: an append commits its row before it writes the head,
        # so every head we can read names a row we will read. Read the other way round, an
        # append landing between the two reads looks like a truncated log (a false alarm).
        head = self._read_head()
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(log_table).order_by(log_table.c.seq)).all())
        for r in rows:
            report.entries += 1
            problems = []
            if r.seq != expected_seq:
                problems.append(
                    f"sequence jumps from {expected_seq - 1} to {r.seq} (deleted entry)"
                )
            if r.prev_hash != prev:
                problems.append("prev_hash does not match the previous entry (deleted/reordered)")
            digest = entry_hash(r.seq, r.ts_ns, r.actor, r.action, r.payload, r.prev_hash)
            if digest != r.entry_hash:
                problems.append("entry content does not match its hash (edited)")
            who = recover_signer(r.entry_hash, r.signature)
            if who is None or who != r.signer:
                problems.append("signature does not match the entry hash")
            elif who not in trusted_set:
                problems.append(f"signed by untrusted key {who}")
            report.problems.extend({"seq": r.seq, "problem": p} for p in problems)
            prev, expected_seq = r.entry_hash, r.seq + 1
        self._verify_head(report, head, rows, trusted_set)
        return report

    def _read_head(self) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = json.loads(self.head_file.read_text())
        except FileNotFoundError:
            return None
        return head

    def _verify_head(
        self, report: VerifyReport, head: dict[str, Any] | None, rows: list[Any], trusted: set[str]
    ) -> None:
        if head is None:
            if rows:
                report.problems.append({"seq": None, "problem": "head checkpoint is missing"})
            return
        report.head_seq = head["seq"]
        who = recover_signer(_head_digest(head["seq"], head["entry_hash"]), head["signature"])
        if who not in trusted:
            report.problems.append(
                {"seq": head["seq"], "problem": "head checkpoint signature invalid"}
            )
            return
        by_seq = {r.seq: r for r in rows}
        last_seq = rows[-1].seq if rows else 0
        if head["seq"] > last_seq:
            report.problems.append(
                {
                    "seq": head["seq"],
                    "problem": f"log ends at {last_seq}, head says {head['seq']} (truncated)",
                }
            )
        elif (
            by_seq.get(head["seq"]) is None or by_seq[head["seq"]].entry_hash != head["entry_hash"]
        ):
            report.problems.append(
                {"seq": head["seq"], "problem": "entry differs from the head checkpoint"}
            )


def _head_digest(seq: int, digest: str) -> str:
    return hashlib.sha256(f"audit-head|{seq}|{digest}".encode()).hexdigest()
