"""The hash-chained, signed audit log detects edited, deleted, reordered and truncated entries
(SQLite and PostgreSQL), and `crowdlev audit verify-log` exits accordingly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from crowdleverage.audit.cli import app
from crowdleverage.audit.log import AuditLog, Signer, entry_hash, log_table
from crowdleverage.domain.errors import IntegrityFailure, InvalidInput

ACTIONS = [
    ("operator:wang", "set_risk_params", {"tier": 3, "liquidation_ratio_bps": 11_500}),
    ("compliance:li", "approve_kyc", {"investor_id": "INV-0001"}),
    ("operator:wang", "pause_platform", {"reason": "reconciliation break"}),
    ("operator:zhao", "book_correction", {"transfer_id": "00ff", "amount_fen": 999}),
    ("operator:wang", "unpause_platform", {}),
]


@pytest.fixture
def log(engine: Engine, tmp_path: Path) -> AuditLog:
    audit = AuditLog(engine, tmp_path / "data")
    audit.create_schema()
    for actor, action, payload in ACTIONS:
        audit.append(actor, action, payload)
    return audit


def problems(log: AuditLog) -> list[tuple[int | None, str]]:
    return [(p["seq"], p["problem"]) for p in log.verify().problems]


def test_untouched_log_verifies(log: AuditLog) -> None:
    report = log.verify()
    assert report.ok and report.entries == 5 and report.head_seq == 5
    assert [e.action for e in log.entries()] == [a for _, a, _ in ACTIONS]


def test_edited_payload_is_detected(log: AuditLog) -> None:
    with log.engine.begin() as conn:
        conn.execute(
            log_table.update().where(log_table.c.seq == 4).values(payload='{"amount_fen":1}')
        )
    assert problems(log) == [(4, "entry content does not match its hash (edited)")]


def test_edit_with_recomputed_hash_breaks_signature_and_chain(log: AuditLog) -> None:
    row = next(e for e in log.entries() if e.seq == 2)
    with log.engine.begin() as conn:
        r = conn.execute(sa.select(log_table).where(log_table.c.seq == 2)).one()
        forged = entry_hash(
            2, r.ts_ns, r.actor, r.action, '{"investor_id":"INV-6666"}', r.prev_hash
        )
        conn.execute(
            log_table.update()
            .where(log_table.c.seq == 2)
            .values(payload='{"investor_id":"INV-6666"}', entry_hash=forged)
        )
    found = problems(log)
    assert (2, "signature does not match the entry hash") in found
    assert any(seq == 3 and "prev_hash" in p for seq, p in found)
    assert row.entry_hash != forged


def test_rewritten_tail_signed_by_another_key_is_detected(log: AuditLog, tmp_path: Path) -> None:
    """An attacker with database access but not the audit key re-signs everything from #3."""
    intruder = Signer(b"\x07" * 32)
    with log.engine.begin() as conn:
        rows = conn.execute(sa.select(log_table).order_by(log_table.c.seq)).all()
        prev = rows[1].entry_hash
        for r in rows[2:]:
            payload = '{"reason":"nothing to see"}' if r.seq == 3 else r.payload
            h = entry_hash(r.seq, r.ts_ns, r.actor, r.action, payload, prev)
            conn.execute(
                log_table.update()
                .where(log_table.c.seq == r.seq)
                .values(
                    payload=payload,
                    entry_hash=h,
                    signer=intruder.address,
                    signature=intruder.sign(h),
                )
            )
            prev = h
    found = problems(log)
    assert {seq for seq, p in found if "untrusted key" in p} == {3, 4, 5}
    assert (5, "entry differs from the head checkpoint") in found


def test_deleted_entry_is_detected(log: AuditLog) -> None:
    with log.engine.begin() as conn:
        conn.execute(log_table.delete().where(log_table.c.seq == 3))
    found = problems(log)
    assert (4, "sequence jumps from 2 to 4 (deleted entry)") in found
    assert (4, "prev_hash does not match the previous entry (deleted/reordered)") in found


def test_reordered_entries_are_detected(log: AuditLog) -> None:
    with log.engine.begin() as conn:
        conn.execute(log_table.update().where(log_table.c.seq == 2).values(seq=-2))
        conn.execute(log_table.update().where(log_table.c.seq == 3).values(seq=2))
        conn.execute(log_table.update().where(log_table.c.seq == -2).values(seq=3))
    found = problems(log)
    assert {seq for seq, _ in found} >= {2, 3, 4}
    assert (2, "entry content does not match its hash (edited)") in found


def test_truncated_tail_is_detected_by_the_head(log: AuditLog) -> None:
    with log.engine.begin() as conn:
        conn.execute(log_table.delete().where(log_table.c.seq == 5))
    assert problems(log) == [(5, "log ends at 4, head says 5 (truncated)")]


def test_bad_input_is_refused(log: AuditLog) -> None:
    with pytest.raises(InvalidInput):
        log.append("", "x", {})
    with pytest.raises(InvalidInput):
        log.append("operator:wang", "x", {"when": object()})
    assert log.verify().entries == 5


def test_cli_verify_log_exit_codes(tmp_path: Path) -> None:
    env = {"CROWDLEV_DATA_DIR": str(tmp_path), "CROWDLEV_DATABASE_URL": ""}
    runner = CliRunner(env=env)
    for actor, action, payload in ACTIONS[:3]:
        res = runner.invoke(
            app, ["record", "--actor", actor, "--action", action, "--payload", json.dumps(payload)]
        )
        assert res.exit_code == 0, res.output
    ok = runner.invoke(app, ["verify-log", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout) == {"ok": True, "entries": 3, "head_seq": 3, "problems": []}
    from crowdleverage.custody.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'custody.db'}")
    with engine.begin() as conn:
        conn.execute(log_table.update().where(log_table.c.seq == 2).values(actor="operator:x"))
    engine.dispose()
    bad = runner.invoke(app, ["verify-log", "--json"])
    assert bad.exit_code == IntegrityFailure.exit_code
    assert json.loads(bad.stdout)["problems"][0]["seq"] == 2
    bad_payload = runner.invoke(app, ["record", "--actor", "a", "--action", "b", "--payload", "[1"])
    assert bad_payload.exit_code == InvalidInput.exit_code


def test_verify_while_others_append_never_raises_a_false_alarm(log: AuditLog) -> None:
    """Issue 14: 15 of 30 verifications said "truncated" while other requests appended. The
    verifier now reads the head before the rows, and the head never moves backwards."""
    import threading

    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(25):
                log.append(f"operator:w{n}", "tick", {"i": i})
        except BaseException as exc:  # surfaced below, never swallowed
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    reports = []
    while any(t.is_alive() for t in threads) or len(reports) < 5:
        reports.append(log.verify())
    for t in threads:
        t.join()
    assert not errors
    assert [r.problems for r in reports if not r.ok] == []
    final = log.verify()
    assert final.ok and final.head_seq == final.entries == 55
