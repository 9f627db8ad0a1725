"""`crowdlev serve`: the platform over HTTP (API at /api/v1, docs at /docs, dashboard at /).

crowdlev serve --demo                   # embedded default + seeded demo, replay advancing
crowdlev serve --config prod.toml       # a real setup: PostgreSQL, RPC chain (from the file)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from crowdleverage.api.logs import configure_logging
from crowdleverage.cliutil import emit_json, typed_errors
from crowdleverage.config import Settings, load_settings
from crowdleverage.domain.errors import InvalidInput

app = typer.Typer()
log = logging.getLogger("crowdleverage.serve")


class ReplayDriver(threading.Thread):
    """Advances the market replay one tick every `pace_s` seconds (the monitor, end of day
    and reconciliation run inside `Platform.tick`)."""

    def __init__(
        self,
        platform: object,
        pace_s: float,
        after_tick: Callable[[], object] | None = None,
        progress: Callable[[str], None] | None = None,
        day_closed: Callable[[dt.date], object] | None = None,
    ) -> None:
        super().__init__(name="replay-driver", daemon=True)
        self.platform = platform
        self.pace_s = pace_s
        self.after_tick = after_tick  # e.g. relay the compliance outbox on chain
        self.progress = progress  # one line per replayed trading day, and one at the end
        self.day_closed = day_closed  # e.g. the end-of-day stress run
        self.stop = threading.Event()
        self._day: str | None = None
        self.after_s = 0.0  # how long the last step's work after the tick took (relay, report)
        self._days = 0

    def _report(self, p: Any) -> None:
        day = p.market.today.isoformat()
        if self.day_closed is not None and self._day is not None and day != self._day:
            self.day_closed(dt.date.fromisoformat(self._day))
        if self.progress is None:
            self._day = day
            return
        if p.replay_done:
            self.progress(f"replay ended after {self._days} trading days (last day {day});"
                          " the service keeps serving, Ctrl-C stops it")  # fmt: skip
            return
        if self._day is not None and day != self._day:
            self._days += 1
            rec = p.last_reconciliation or {}
            snap_status = rec.get("status", "?")
            self.progress(f"replayed {self._day}  (day {self._days}; reconciliation "
                          f"{snap_status}{', PAUSED' if p.paused_reason else ''})")  # fmt: skip
        self._day = day

    _failed = False

    def step(self) -> None:
        """One replay tick (the platform process's writer calls this between commands)."""
        from crowdleverage.custody.db import GroupCommitFailed  # not at --help (SQLAlchemy)

        p: Any = self.platform
        if p.replay_done:
            return
        if self._failed and p.paused_reason is not None:
            return  # fail closed until an operator resumes
        try:
            p.tick()
            t0 = time.monotonic()
            if self.after_tick is not None:
                self.after_tick()
            self._failed = False
            self._report(p)
            self.after_s = time.monotonic() - t0
        except GroupCommitFailed:  # commands between the tick's parts: the process stops
            raise
        except Exception as exc:  # keep the service up; the operator sees why
            log.exception("replay tick failed")
            self._failed = True
            with contextlib.suppress(Exception):
                p.pause(f"replay tick failed: {exc}")

    def run(self) -> None:
        from crowdleverage.flows.platform import Platform

        assert isinstance(self.platform, Platform), "dev: driver needs a Platform"
        while not self.stop.wait(self.pace_s):
            if self.platform.replay_done:
                return
            self.step()


_LOG_LEVEL = typer.Option(
    "warning",
    "--log-level",
    envvar="CROWDLEV_LOG_LEVEL",
    help="JSON-lines logs on stderr at this level: debug (ticks), info (commands, risk"
    " events), warning, error",
)
_STRESS = typer.Option(
    True,
    "--stress/--no-stress",
    help="run the reduced stress suite at every replayed close (demo), published on /transparency",
)


def _start_day(start: str, pace_s: float) -> dt.date:
    if not 0.05 <= pace_s <= 3600:
        raise InvalidInput("--pace-s must be between 0.05 and 3600 seconds")
    try:
        return dt.date.fromisoformat(start)
    except ValueError as exc:
        raise InvalidInput(f"--from {start!r} is not a date YYYY-MM-DD") from exc


def _logins() -> dict[str, str]:
    from crowdleverage.api import demo as demo_world

    return {
        name: demo_world.password(name)
        for name in [s[0] for s in demo_world.STAFF]
        + [i[0] for i in demo_world.INVESTORS]
        + [b[0] for b in demo_world.BORROWERS]
    }


def _demo_settings(settings: Settings, demo: bool) -> Settings:
    if demo and settings.database_url is None:
        # a fresh embedded store per demo run: the platform book starts empty
        run_dir = settings.data_dir / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
        settings = settings.model_copy(update={"data_dir": run_dir})
    settings.ensure_data_dir()
    return settings


@app.command()
@typed_errors
def serve(
    config: Path | None = typer.Option(None, "--config", help="TOML settings file"),
    host: str | None = typer.Option(None, help="bind address (default: settings.api_host)"),
    port: int | None = typer.Option(None, help="port (default: settings.api_port)"),
    demo: bool = typer.Option(False, "--demo", help="seed demo users and advance the replay"),
    pace_s: float = typer.Option(1.5, "--pace-s", help="seconds between replay ticks (demo)"),
    start: str = typer.Option("2015-12-28", "--from", help="first replay day (YYYY-MM-DD)"),
    as_json: bool = typer.Option(False, "--json", help="print the startup facts as JSON"),
    workers: int = typer.Option(2, "--workers", help="API worker processes"),
    in_process: bool = typer.Option(
        False, "--in-process", help="one process: the platform in a thread of the API"
    ),
    stress_each_day: bool = _STRESS,
    log_level: str = _LOG_LEVEL,
) -> None:
    """Run the platform process and the HTTP API workers (one writer, many readers)."""
    start_day = _start_day(start, pace_s)
    if not 1 <= workers <= 64:
        raise InvalidInput("--workers must be between 1 and 64")
    configure_logging(log_level)
    settings = _demo_settings(load_settings(config), demo)
    bind_host, bind_port = host or settings.api_host, port or settings.api_port
    url = f"http://{bind_host}:{bind_port}"
    facts: dict[str, object] = {"url": url, "docs": f"{url}/docs",
                                "data_dir": str(settings.data_dir)}  # fmt: skip
    sink = None
    if demo and settings.smtp_host is None:  # the demo's mails go to a local sink (/mails)
        from crowdleverage.reports.mailsink import MailSink
        from crowdleverage.reports.wiring import mail_dir

        sink = MailSink(mail_dir(settings.data_dir)).start()
        settings = settings.model_copy(update={"smtp_host": sink.host, "smtp_port": sink.port})
        facts["smtp_sink"] = f"{sink.host}:{sink.port} (mails at {url}/mails)"
    if demo:
        facts["demo_logins"] = _logins()
    try:
        if in_process:
            _serve_in_process(settings, facts, demo, pace_s, start_day, as_json,
                              stress_each_day, bind_host, bind_port)  # fmt: skip
        else:
            _serve_processes(settings, config, facts, demo, pace_s, start_day, as_json,
                             stress_each_day, log_level, workers, bind_host, bind_port)  # fmt: skip
    finally:
        if sink is not None:
            sink.stop()


def _announce(
    facts: dict[str, object],
    settings: Settings,
    as_json: bool,
    start_day: dt.date,
    pace_s: float,
    mode_line: str,
) -> None:
    """The startup facts: JSON, or the lines a person reads (URL, data, mode, mail, logins)."""
    if as_json:
        emit_json(facts)
        return
    url = facts["url"]
    typer.echo(f"CrowdLeverage is serving at {url}  (API docs: {url}/docs)")
    typer.echo(f"data: {settings.data_dir}  ledger: {settings.resolved_database_url}")
    typer.echo(mode_line)
    if "smtp_sink" in facts:
        typer.echo(f"mail: SMTP sink at {facts['smtp_sink']}")
    logins = facts.get("demo_logins")
    if isinstance(logins, dict):
        typer.echo(f"demo: replay from {start_day}, one tick every {pace_s:g} s; logins:")
        for name, pw in logins.items():
            typer.echo(f"  {name:<12} {pw}")


def _serve_processes(
    settings: Settings,
    config: Path | None,
    facts: dict[str, object],
    demo: bool,
    pace_s: float,
    start_day: dt.date,
    as_json: bool,
    stress_each_day: bool,
    log_level: str,
    workers: int,
    bind_host: str,
    bind_port: int,
) -> None:
    """The platform process as a child (restarted when it dies) and the API workers."""
    from crowdleverage.service.process import PlatformChild, run_api

    child = PlatformChild(settings, config, demo=demo, pace_s=pace_s, start=start_day,
                          stress=stress_each_day, log_level=log_level, quiet=as_json)  # fmt: skip
    child.start()
    try:
        child.wait_ready(timeout_s=600)
        facts["platform_pid"] = child.pid
        facts["workers"] = workers
        _announce(facts, settings, as_json, start_day, pace_s,
                  f"platform process: pid {child.pid}; API workers: {workers}")  # fmt: skip
        run_api(settings, config, bind_host, bind_port, workers, log_level)
    finally:
        child.stop()


@app.command("platform")
@typed_errors
def platform_cmd(
    config: Path | None = typer.Option(None, "--config", help="TOML settings file"),
    demo: bool = typer.Option(False, "--demo", help="seed demo users (once) and replay"),
    replay: bool = typer.Option(False, "--replay", help="advance the market replay"),
    pace_s: float = typer.Option(1.5, "--pace-s", help="seconds between replay ticks"),
    start: str = typer.Option("2015-12-28", "--from", help="first replay day (YYYY-MM-DD)"),
    stress_each_day: bool = _STRESS,
    log_level: str = _LOG_LEVEL,
) -> None:
    """Run the platform process: the single writer (chain, trading session, command queue)."""
    from crowdleverage.service.process import run_platform

    start_day = _start_day(start, pace_s)
    configure_logging(log_level)
    settings = load_settings(config)
    settings.ensure_data_dir()
    run_platform(settings, demo=demo, replay=replay or demo, pace_s=pace_s, start=start_day,
                 stress=stress_each_day, progress=typer.echo)  # fmt: skip


@app.command("api")
@typed_errors
def api_cmd(
    config: Path | None = typer.Option(None, "--config", help="TOML settings file"),
    host: str | None = typer.Option(None, help="bind address (default: settings.api_host)"),
    port: int | None = typer.Option(None, help="port (default: settings.api_port)"),
    workers: int = typer.Option(2, "--workers", help="API worker processes"),
    log_level: str = _LOG_LEVEL,
) -> None:
    """Run the HTTP API workers (commands to the platform process's queue, reads from its
    read models)."""
    from crowdleverage.service.process import run_api

    if not 1 <= workers <= 64:
        raise InvalidInput("--workers must be between 1 and 64")
    configure_logging(log_level)
    settings = load_settings(config)
    settings.ensure_data_dir()
    run_api(settings, config, host or settings.api_host, port or settings.api_port, workers,
            log_level)  # fmt: skip


def _serve_in_process(
    settings: Settings,
    facts: dict[str, object],
    demo: bool,
    pace_s: float,
    start_day: dt.date,
    as_json: bool,
    stress_each_day: bool,
    bind_host: str,
    bind_port: int,
) -> None:
    """`--in-process`: the platform and the API in one process, the replay in a thread."""
    import uvicorn

    from crowdleverage.api import demo as demo_world
    from crowdleverage.api.app import create_app
    from crowdleverage.api.published import EndOfDayStress
    from crowdleverage.flows.platform import Platform

    platform = Platform(settings, market_start=start_day)
    application = create_app(settings, platform=platform, engine=platform.engine)
    if demo:
        demo_world.seed(application.state.api)
    _announce(facts, settings, as_json, start_day, pace_s,
              f"chain: {settings.chain}  securities watched: {len(platform.codes)}")  # fmt: skip
    api_state = application.state.api
    relay = lambda: platform.relay_identities(api_state.onboarding())  # noqa: E731
    progress = None if as_json else typer.echo
    stress = EndOfDayStress(settings.data_dir) if demo and stress_each_day else None
    day_closed = stress.day_closed if stress is not None else None
    driver = ReplayDriver(platform, pace_s, relay, progress, day_closed) if demo else None
    if driver is not None:
        driver.start()
    from crowdleverage.reports.wiring import start_notify_worker

    notify = start_notify_worker(api_state)  # notifications and mail, derived from events
    try:
        # open SSE streams never end by themselves: give them 3 s at shutdown, then close
        uvicorn.run(
            application, host=bind_host, port=bind_port, log_level="warning",
            timeout_graceful_shutdown=3,
        )  # fmt: skip
    finally:
        if driver is not None:
            driver.stop.set()
            driver.join(timeout=10)
        if stress is not None:
            stress.join(timeout=30)
        notify.stop.set()
        notify.join(timeout=10)
        platform.save()  # also saved by the app's lifespan on SIGTERM (uvicorn re-raises it)
        platform.close()
