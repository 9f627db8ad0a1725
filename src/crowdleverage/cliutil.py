"""Helpers shared by every feature's CLI: JSON output, typed-error exits, and which data
directory (the running platform's) a command reads, opened read-only where it only reads."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from crowdleverage.domain.errors import CrowdLevError, NotFound

if TYPE_CHECKING:
    from sqlalchemy import MetaData
    from sqlalchemy.engine import Engine

    from crowdleverage.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")


def report_error(err: CrowdLevError, as_json: bool) -> typer.Exit:
    """Write a typed error to stderr; return the Exit carrying its exit code."""
    if as_json:
        sys.stderr.write(json.dumps(err.to_dict(), ensure_ascii=False) + "\n")
    else:
        sys.stderr.write(f"error: {err.message}\n")
    return typer.Exit(code=err.exit_code)


def typed_errors(fn: F) -> F:
    """Turn a CrowdLevError raised by a command into its exit code and a message.
    The command's `as_json` keyword (the --json flag) selects the format."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CrowdLevError as err:
            raise report_error(err, bool(kwargs.get("as_json"))) from err

    return wrapper  # type: ignore[return-value]


# ----------------------------------------------------------------- the platform's data dir

DATA_DIR_ENV = "CROWDLEV_DATA_DIR"
DATA_DIR_HELP = (
    "the platform's data directory (default: $CROWDLEV_DATA_DIR, else the newest demo run"
    " var/demo-*, else ./var)"
)
# A marker of platform data in a directory: the ledger, the embedded chain, its manifest.
_DATA_MARKERS = ("custody.db", "chain/journal.sqlite", "chain/manifest.json")


def has_platform_data(path: Path) -> bool:
    return any((path / m).exists() for m in _DATA_MARKERS)


def newest_demo(base: Path) -> Path | None:
    """The most recent `demo-<time>` run under `base` holding platform data (`crowdlev serve
    --demo` names them by start time, so the newest name is the latest run)."""
    try:
        runs = [p for p in base.glob("demo-*") if p.is_dir() and has_platform_data(p)]
    except OSError:
        return None
    return max(runs, key=lambda p: (p.name, p.stat().st_mtime)) if runs else None


@dataclass(frozen=True, slots=True)
class DataDirChoice:
    path: Path
    why: str

    def describe(self) -> str:
        return f"data dir: {self.path} ({self.why})"


def choose_data_dir(
    flag: Path | None, configured: Path, configured_by: str | None
) -> DataDirChoice:
    """Which data directory a command reads: `--data-dir` as given; else the configured one
    (`CROWDLEV_DATA_DIR` or the TOML file) if it holds platform data, else its newest demo
    run; without configuration the newest `./var/demo-*`, else `./var`."""
    if flag is not None:
        return DataDirChoice(flag, "from --data-dir")
    if configured_by is not None:
        demo = None if has_platform_data(configured) else newest_demo(configured)
        if demo is not None:
            return DataDirChoice(demo, f"newest demo run under {configured_by}={configured}")
        return DataDirChoice(configured, f"from {configured_by}")
    demo = newest_demo(configured)
    if demo is not None:
        n = sum(1 for p in configured.glob("demo-*") if p.is_dir())
        return DataDirChoice(
            demo,
            f"newest of {n} demo run(s) under {configured}/ (`crowdlev serve --demo`); "
            "choose another with --data-dir or CROWDLEV_DATA_DIR",
        )
    return DataDirChoice(configured, "default; set --data-dir or CROWDLEV_DATA_DIR")


def platform_settings(
    data_dir: Path | None, config: Path | None = None, *, announce: bool = True
) -> Settings:
    """Settings with the data dir chosen by `choose_data_dir`; says which one on stderr when
    `announce` (commands pass `not as_json`: with --json stdout and stderr stay as before)."""
    from crowdleverage.config import load_settings

    settings = load_settings(config)
    configured_by = None
    if "data_dir" in settings.model_fields_set:
        configured_by = DATA_DIR_ENV if os.environ.get(DATA_DIR_ENV) else "the config file"
    choice = choose_data_dir(data_dir, settings.data_dir, configured_by)
    if announce:
        sys.stderr.write(choice.describe() + "\n")
    return settings.model_copy(update={"data_dir": choice.path})


def require_platform_data(settings: Settings) -> Path:
    """The data dir, which must exist and hold platform data (a read-only command creates
    nothing): NotFound otherwise."""
    path = settings.data_dir
    if not path.is_dir():
        raise NotFound(f"data dir {path} does not exist; start the platform (`make run`) or "
                       "pass --data-dir")  # fmt: skip
    if not has_platform_data(path) and not settings.database_url:
        raise NotFound(f"no platform data in {path} (no custody.db, no chain/); pass --data-dir "
                       "or set CROWDLEV_DATA_DIR to the running platform's directory")  # fmt: skip
    return path


def sqlite_readonly_uri(path: Path) -> str:
    """A URI that opens an SQLite file without creating or changing anything in its directory:
    `immutable=1` when no process has it open in WAL mode (no `-wal` file: nothing can change
    under us), else `mode=ro`, which reads the live WAL through the writer's `-shm`."""
    if Path(f"{path}-wal").exists():
        return f"file:{path}?mode=ro"
    return f"file:{path}?mode=ro&immutable=1"


def readonly_engine(settings: Settings, shadow: Iterable[MetaData] = ()) -> Engine:
    """An engine that cannot write: SQLite through `sqlite_readonly_uri` (one connection),
    PostgreSQL with read-only transactions. Tables of `shadow` missing from the SQLite file
    (a feature never used in this data dir) are stand-ins: empty TEMP tables, outside the
    data dir. NotFound when the SQLite file is missing."""
    import sqlalchemy as sa
    from sqlalchemy import event
    from sqlalchemy.pool import StaticPool
    from sqlalchemy.schema import CreateTable

    if settings.database_url and not settings.database_url.startswith("sqlite"):
        return sa.create_engine(
            settings.database_url,
            connect_args={"options": "-c default_transaction_read_only=on"},
        )
    url = settings.resolved_database_url
    path = Path(url.split(":///", 1)[1]) if ":///" in url else None
    if path is None or not path.is_file():
        raise NotFound(f"no ledger database at {path}; is this the platform's data dir?")
    uri = sqlite_readonly_uri(path)
    engine = sa.create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
        poolclass=StaticPool,  # one connection: the TEMP stand-ins live in it
    )
    tables = [t for md in shadow for t in md.sorted_tables]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        present = {r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for t in tables:
            if t.name not in present:
                ddl = str(CreateTable(t).compile(dialect=engine.dialect))
                cur.execute(ddl.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
        cur.close()

    return engine


DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help=DATA_DIR_HELP)]
