"""Third-party audit attestations (第三方审计报告).

The auditor signs, with its own Ed25519 key, a statement of what it checked for a period: the
latest reconciliation (custody ledger ↔ chain), the latest proof-of-liabilities root, the
latest stress-test result, and the deployed contracts' runtime code against the code compiled
from the shipped source. The signed bytes are the attestation's canonical JSON (UTF-8, sorted
keys, no spaces) exactly as stored and published, so a verifier needs no canonicaliser: the
server (`verify`) and the browser (WebCrypto Ed25519 on /attestations) check the same bytes.

The auditor's key lives in `<data_dir>/auditor_ed25519.key` (0600, created on first use) —
separate from the platform's audit-log key — and its public key is published with every
attestation and in `<data_dir>/auditor_ed25519.pub`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crowdleverage.custody.db import write_transaction
from crowdleverage.domain.errors import ConfigError, InvalidInput, NotFound
from crowdleverage.flows.platform import Platform

KIND = "crowdleverage.attestation.v1"
KEY_FILE = "auditor_ed25519.key"

meta = sa.MetaData()
attestations = sa.Table(
    "audit_attestations",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("period_start", sa.String(10), nullable=False),
    sa.Column("period_end", sa.String(10), nullable=False),
    sa.Column("auditor", sa.String(128), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # canonical JSON, exactly the signed bytes
    sa.Column("signature", sa.String(128), nullable=False),  # hex, 64 bytes
    sa.Column("public_key", sa.String(64), nullable=False),  # hex, 32 bytes
)


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class AuditorKey:
    def __init__(self, private_bytes: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self._key = Ed25519PrivateKey.from_private_bytes(private_bytes)
        self.public_hex = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    @classmethod
    def load_or_create(cls, data_dir: Path) -> AuditorKey:
        path = data_dir / KEY_FILE
        if path.exists():
            try:
                return cls(bytes.fromhex(path.read_text().strip()))
            except ValueError as exc:
                raise ConfigError(f"{path} does not hold a 32-byte hex Ed25519 key") from exc
        raw = os.urandom(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(raw.hex())
        key = cls(raw)
        (data_dir / "auditor_ed25519.pub").write_text(key.public_hex + "\n")
        return key

    def sign(self, message: bytes) -> str:
        return self._key.sign(message).hex()


def verify(body: str, signature_hex: str, public_key_hex: str) -> bool:
    """Does `signature_hex` sign the UTF-8 bytes of `body` under `public_key_hex`?"""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        pk = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        pk.verify(bytes.fromhex(signature_hex), body.encode())
    except (ValueError, InvalidSignature):
        return False
    return True


def contract_hashes(p: Platform) -> list[dict[str, Any]]:
    """Each deployed contract with a shipped source: the sha256 of its runtime code on chain
    and whether that code is the one compiled from the source (the runtime code is contained
    in the compiled init code; Vyper appends immutables after it on deployment)."""
    from crowdleverage.chain.artifacts import artifact, source_path

    out = []
    with p.lock:
        deployed = dict(p.chain.deployed())
        code_at = p.chain.code_at  # type: ignore[attr-defined]
        for name, address in sorted(deployed.items()):
            if not source_path(name).is_file():
                continue
            code = bytes(code_at(address))
            art = artifact(name)
            runtime = code[: art.runtime_size_bytes]
            matches = bool(runtime) and (
                runtime in art.bytecode or runtime in art.blueprint_bytecode
            )
            out.append({"name": name, "address": address,
                        "code_sha256": hashlib.sha256(code).hexdigest(),
                        "runtime_sha256": hashlib.sha256(runtime).hexdigest(),
                        "matches_source": matches})  # fmt: skip
    return out


def _date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{what} must be a date YYYY-MM-DD") from exc


def gather(p: Platform, period_start: str, period_end: str, auditor: str) -> dict[str, Any]:
    """What the auditor attests to, read from the platform's record and the chain."""
    from crowdleverage.api.published import stress_summary

    start, end = _date(period_start, "period_start"), _date(period_end, "period_end")
    if end < start:
        raise InvalidInput(f"period_end {end} is before period_start {start}")
    with p.lock:
        rec = p.last_reconciliation or p.reconcile()
        epoch = p.latest_epoch()
        root = p.proofs.root(epoch) if epoch is not None else None
    stress = stress_summary(p.settings.data_dir)
    return {
        "kind": KIND,
        "auditor": auditor,
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "reconciliation": {
            "status": rec["status"], "at": rec["at"], "trade_date": rec["trade_date"],
            "breaks": len(rec["breaks"]), "accounts_checked": rec["accounts_checked"],
            "cash_token_supply_fen": (rec.get("chain") or {}).get("supply_fen"),
            "custody_cash_fen": (rec.get("chain") or {}).get("custody_cash_fen"),
        },
        "proof_of_liabilities": None if root is None
        else {"epoch": epoch, "root_hash": root[0], "total_fen": root[1]},
        "stress": None if stress is None
        else {"date": stress["date"], "suite": stress["suite"],
              "params_hash": stress["params_hash"],
              "all_targets_met": stress["all_targets_met"]},
        "contracts": contract_hashes(p),
    }  # fmt: skip


class Attestations:
    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self.engine = engine
        self.data_dir = data_dir
        meta.create_all(engine)

    def key(self) -> AuditorKey:
        return AuditorKey.load_or_create(self.data_dir)

    def create(
        self, p: Platform, period_start: str, period_end: str, auditor: str
    ) -> dict[str, Any]:
        facts = gather(p, period_start, period_end, auditor)
        body = canonical(facts)
        key = self.key()
        row = {"created_at": facts["created_at"], "period_start": facts["period"]["start"],
               "period_end": facts["period"]["end"], "auditor": auditor, "body": body,
               "signature": key.sign(body.encode()), "public_key": key.public_hex}  # fmt: skip
        with write_transaction(self.engine) as conn:
            key_row = conn.execute(attestations.insert(), row).inserted_primary_key
        assert key_row is not None, "dev: the insert returns its id"
        return self.get(int(key_row[0]))

    def _out(self, r: Any) -> dict[str, Any]:
        trusted = self.trusted_key()
        return {"id": r.id, "created_at": r.created_at, "period_start": r.period_start,
                "period_end": r.period_end, "auditor": r.auditor, "body": r.body,
                "signature": r.signature, "public_key": r.public_key,
                "trusted_key": r.public_key == trusted,
                "valid": verify(r.body, r.signature, r.public_key)}  # fmt: skip

    def trusted_key(self) -> str | None:
        pub = self.data_dir / "auditor_ed25519.pub"
        return pub.read_text().strip() if pub.exists() else None

    def page(self, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        a = attestations.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(attestations).order_by(a.id.desc()).limit(limit).offset(offset)
            ).all()
            total = conn.execute(sa.select(sa.func.count()).select_from(attestations)).scalar()
        return [self._out(r) for r in rows], int(total or 0)

    def get(self, att_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(attestations).where(attestations.c.id == att_id)).first()
        if r is None:
            raise NotFound(f"attestation {att_id} not found")
        return self._out(r)


def report_pdf(att: dict[str, Any], lang: str) -> bytes:
    """The attestation as a readable report (the signed JSON and the signature included)."""
    from crowdleverage.domain.money import format_yuan
    from crowdleverage.reports.pdf import Doc
    from crowdleverage.web.i18n_reports import tr

    facts = json.loads(att["body"])
    doc = Doc(f"{tr(lang, 'attestation')} #{att['id']}")
    doc.title(f"{tr(lang, 'attestations')} #{att['id']}")
    rec, pol, stress = facts["reconciliation"], facts["proof_of_liabilities"], facts["stress"]
    rows = [
        (tr(lang, "period"), f"{facts['period']['start']} — {facts['period']['end']}"),
        (tr(lang, "signed_at"), facts["created_at"]),
        (tr(lang, "reconciliation"), f"{rec['status']} ({rec['trade_date']}, {rec['breaks']})"),
    ]
    if pol is not None:
        total = format_yuan(int(pol["total_fen"]))
        rows += [(tr(lang, "proof_root"), f"#{pol['epoch']} {pol['root_hash']}"),
                 (tr(lang, "total_liabilities"), total)]  # fmt: skip
    if stress is not None:
        rows.append((tr(lang, "stress_date"), f"{stress['date']} {stress['suite']}"))
    rows += [
        (tr(lang, "auditor_key"), att["public_key"]),
        (tr(lang, "signature"), att["signature"]),
    ]
    doc.pairs(rows)
    doc.table(
        [tr(lang, "code"), "sha256", tr(lang, "contracts_match")],
        [[c["name"], c["code_sha256"], tr(lang, "yes") if c["matches_source"] else tr(lang, "no")]
         for c in facts["contracts"]],
        widths=(0.22, 0.6, 0.18),
    )  # fmt: skip
    doc.note(att["body"])
    return doc.render()
