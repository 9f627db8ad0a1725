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
from crowdleverage.config import load_settings
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

    def run(self) -> None:
        from crowdleverage.flows.platform import Platform

        p = self.platform
        assert isinstance(p, Platform), "dev: driver needs a Platform"
        failed = False
        while not self.stop.wait(self.pace_s):
            if p.replay_done:
                return
            if failed and p.paused_reason is not None:
                continue  # fail closed until an operator resumes
            try:
                p.tick()
                if self.after_tick is not None:
                    self.after_tick()
                failed = False
                self._report(p)
            except Exception as exc:  # keep the service up; the operator sees why
                log.exception("replay tick failed")
                failed = True
                with contextlib.suppress(Exception):
                    p.pause(f"replay tick failed: {exc}")


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
    stress_each_day: bool = typer.Option(
        True,
        "--stress/--no-stress",
        help="run the reduced stress suite at every replayed close (demo), published on"
        " /transparency",
    ),
    log_level: str = typer.Option(
        "warning",
        "--log-level",
        envvar="CROWDLEV_LOG_LEVEL",
        help="JSON-lines logs on stderr at this level: debug (ticks), info (commands, risk"
        " events), warning, error",
    ),
) -> None:
    """Run the platform's HTTP service (single process: the platform state lives in it)."""
    import uvicorn

    from crowdleverage.api import demo as demo_world
    from crowdleverage.api.app import create_app
    from crowdleverage.api.published import EndOfDayStress
    from crowdleverage.flows.platform import Platform

    if not 0.05 <= pace_s <= 3600:
        raise InvalidInput("--pace-s must be between 0.05 and 3600 seconds")
    try:
        start_day = dt.date.fromisoformat(start)
    except ValueError as exc:
        raise InvalidInput(f"--from {start!r} is not a date YYYY-MM-DD") from exc
    configure_logging(log_level)
    settings = load_settings(config)
    if demo and settings.database_url is None:
        # a fresh embedded store per demo run: the platform book starts empty
        run_dir = settings.data_dir / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
        settings = settings.model_copy(update={"data_dir": run_dir})
    settings.ensure_data_dir()
    sink = None
    if demo and settings.smtp_host is None:  # the demo's mails go to a local sink (/mails)
        from crowdleverage.reports.mailsink import MailSink
        from crowdleverage.reports.wiring import mail_dir

        sink = MailSink(mail_dir(settings.data_dir)).start()
        settings = settings.model_copy(update={"smtp_host": sink.host, "smtp_port": sink.port})
    platform = Platform(settings, market_start=start_day)
    application = create_app(settings, platform=platform, engine=platform.engine)
    bind_host, bind_port = host or settings.api_host, port or settings.api_port
    url = f"http://{bind_host}:{bind_port}"
    facts: dict[str, object] = {
        "url": url,
        "docs": f"{url}/docs",
        "data_dir": str(settings.data_dir),
    }
    if sink is not None:
        facts["smtp_sink"] = f"{sink.host}:{sink.port} (mails at {url}/mails)"
    if demo:
        demo_world.seed(application.state.api)
        logins = {
            name: demo_world.password(name)
            for name in [s[0] for s in demo_world.STAFF]
            + [i[0] for i in demo_world.INVESTORS]
            + [b[0] for b in demo_world.BORROWERS]
        }
        facts["demo_logins"] = logins
    if as_json:
        emit_json(facts)
    else:
        typer.echo(f"CrowdLeverage is serving at {url}  (API docs: {url}/docs)")
        typer.echo(f"data: {settings.data_dir}  ledger: {settings.resolved_database_url}")
        typer.echo(f"chain: {settings.chain}  securities watched: {len(platform.codes)}")
        if sink is not None:
            typer.echo(f"mail: SMTP sink at {facts['smtp_sink']}")
        if demo:
            typer.echo(f"demo: replay from {start_day}, one tick every {pace_s:g} s; logins:")
            for name, pw in facts["demo_logins"].items():  # type: ignore[attr-defined]
                typer.echo(f"  {name:<12} {pw}")
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
        if sink is not None:
            sink.stop()
        platform.save()  # also saved by the app's lifespan on SIGTERM (uvicorn re-raises it)
        platform.close()
