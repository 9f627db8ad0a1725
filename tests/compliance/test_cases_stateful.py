"""Case workflow as a state machine: random officer actions against the real tables; the
workflow graph, the audit trail and the resolution rule hold after every step."""

from __future__ import annotations

import os

import sqlalchemy as sa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy.pool import StaticPool

from crowdleverage.compliance import cases as case_repo
from crowdleverage.compliance.cases import CaseStatus, Resolution
from crowdleverage.compliance.repository import create_tables
from crowdleverage.domain.errors import Conflict, InvalidInput

LONG = os.environ.get("CROWDLEV_LONG") == "1"
ALLOWED = {
    CaseStatus.OPEN: {CaseStatus.INVESTIGATING, CaseStatus.CLOSED},
    CaseStatus.INVESTIGATING: {CaseStatus.REPORTED, CaseStatus.CLOSED},
    CaseStatus.REPORTED: {CaseStatus.CLOSED},
    CaseStatus.CLOSED: set(),
}


class CaseWorkflow(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # One in-memory database per example (StaticPool: every connection sees it).
        self.engine = sa.create_engine("sqlite://", poolclass=StaticPool)
        create_tables(self.engine)
        self.model: dict[str, CaseStatus] = {}
        self.moves: dict[str, int] = {}

    def teardown(self) -> None:
        self.engine.dispose()

    @rule(finding=st.integers(0, 5))
    def open_case(self, finding: int) -> None:
        with self.engine.begin() as conn:
            case, created = case_repo.open_case(
                conn, kind="aml:structuring", identity_id="kyc_1",
                dedup_key=f"finding-{finding}", title=f"finding {finding}", details={},
            )  # fmt: skip
        assert created == (case.case_id not in self.model)
        self.model.setdefault(case.case_id, CaseStatus.OPEN)
        self.moves.setdefault(case.case_id, 0)

    @rule(
        pick=st.integers(0, 10**6),
        to=st.sampled_from(list(CaseStatus)),
        resolution=st.none() | st.sampled_from(list(Resolution)),
        note=st.sampled_from(["", "grounds"]),
    )
    def move(self, pick: int, to: CaseStatus, resolution: Resolution | None, note: str) -> None:
        if not self.model:
            return
        case_id = sorted(self.model)[pick % len(self.model)]
        before = self.model[case_id]
        legal = to in ALLOWED[before]
        needs = (to == CaseStatus.CLOSED) != (resolution is not None) or (
            to == CaseStatus.REPORTED and not note
        )
        try:
            with self.engine.begin() as conn:
                case_repo.transition(
                    conn, case_id, to, actor="officer", note=note, resolution=resolution
                )
        except Conflict:
            assert not legal
            return
        except InvalidInput:
            assert legal and needs
            return
        assert legal and not needs
        self.model[case_id] = to
        self.moves[case_id] += 1

    @invariant()
    def database_matches_model_and_trail(self) -> None:
        with self.engine.connect() as conn:
            for case_id, status in self.model.items():
                case = case_repo.get_case(conn, case_id)
                trail = case_repo.history(conn, case_id)
                assert case.status == status
                assert len(trail) == self.moves[case_id] + 1
                assert [e["to"] for e in trail][-1] == status.value
                assert (case.resolution is not None) == (status == CaseStatus.CLOSED)
                assert case.version == self.moves[case_id] + 1
            n = conn.execute(sa.text("select count(*) from compliance_cases")).scalar()
            assert n == len(self.model)


CaseWorkflow.TestCase.settings = settings(
    max_examples=200 if LONG else 15, stateful_step_count=40 if LONG else 20, deadline=None
)
test_case_workflow = CaseWorkflow.TestCase
