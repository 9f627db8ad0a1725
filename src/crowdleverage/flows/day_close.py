"""How far the platform got in a trading day's end of day (`<data_dir>/flows/close.json`), so
that a restart inside it resumes it exactly (issue 14, "a durable record").

A restart after the day's last committed tick and before the close's commit runs
`Platform.end_of_day` again (`tick` runs it in parts, serving wallet commands between them;
until the close's last part commits, their commits name the day's last tick as the last
one committed too). Each of its steps is then either idempotent by the state it
changes, or finds what it did before through a reference written here *before* its effect:

* the session's close (unfilled orders expire, their cash is released): idempotent, the
  broker releases an order only while it is open on chain;
* the pool's epoch close: once — `risk/session.py`'s progress file names the epoch before
  the transaction, and its figures are read back from that epoch's events;
* redemption proceeds collected: idempotent (only a non-zero `claimable_fen` is collected);
* payouts (pain.001 → bank → camt.053 imported): once — `message_id` is chosen here before
  custody exports under it; the same file goes to the bank again while the bank has not
  executed it (a bank refuses a MsgId twice), nothing once it has (its statement was
  imported, at the latest when the platform started);
* NAV points, the risk snapshot, the next day and the close's statement lines: in the
  record's transaction at the end (`Platform.save`), derived from the chain again;
* the proof-of-liabilities snapshot: once — `proof_epoch` is written here before the
  snapshot, and an epoch that exists is not snapshot again;
* the reconciliation: an observation, run again (a restart reconciles anyway).

The file names the trade date of a *traded* close (the day's session was open); it is only
read by the close of that date, which happens once (after its commit the record's market day
is the next one), so it is never cleared.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from crowdleverage.domain.errors import ConfigError


@dataclass(slots=True)
class DayClose:
    """The references of `day`'s close chosen so far."""

    day: str
    message_id: str | None = None  # the payouts' pain.001 MsgId
    proof_epoch: int | None = None  # the proof-of-liabilities epoch

    @staticmethod
    def of(path: Path, day: str) -> DayClose:
        """The record of `day`'s close in `path`, or a new one."""
        if not path.exists():
            return DayClose(day)
        try:
            raw = json.loads(path.read_text())
            rec = DayClose(str(raw["day"]), raw.get("message_id"), raw.get("proof_epoch"))
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{path} is not an end of day's progress file: {err}") from err
        return rec if rec.day == day else DayClose(day)

    def write(self, path: Path) -> None:
        """Atomically (a killed process leaves the old file or the new one)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)
