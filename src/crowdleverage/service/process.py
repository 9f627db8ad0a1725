"""The processes of `crowdlev serve`: the platform process (`run_platform`, the single writer),
the API workers (`run_api`: uvicorn, `worker_app` in each worker) and `PlatformChild`, which
starts the platform process under `crowdlev serve` and starts it again if it dies."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crowdleverage.config import Settings
from crowdleverage.domain.errors import ConfigError

log = logging.getLogger("crowdleverage.service")


def run_platform(
    settings: Settings,
    *,
    demo: bool,
    replay: bool,
    pace_s: float,
    start: dt.date,
    stress: bool,
    progress: Callable[[str], None] | None,
) -> None:
    """The platform process: opens the chain and the platform, seeds the demo world once,
    then runs the writer until SIGTERM/SIGINT (then saves and closes)."""
    from crowdleverage.api import demo as demo_world
    from crowdleverage.api.app import create_app
    from crowdleverage.api.published import EndOfDayStress
    from crowdleverage.api.serve import ReplayDriver
    from crowdleverage.flows.platform import Platform
    from crowdleverage.service.queue import Queue
    from crowdleverage.service.writer import GroupCommitFailed, PlatformWriter

    platform = Platform(settings, market_start=start)
    app = create_app(settings, platform=platform, engine=platform.engine)
    st = app.state.api
    if demo and st.users.find("operator") is None:
        demo_world.seed(st)
    queue = Queue(platform.engine)
    queue.create_schema()
    stress_runner = EndOfDayStress(settings.data_dir) if replay and demo and stress else None
    tick = None
    if replay:
        relay = lambda: platform.relay_identities(st.onboarding())  # noqa: E731
        day_closed = stress_runner.day_closed if stress_runner is not None else None
        tick = ReplayDriver(platform, pace_s, relay, progress, day_closed).step
    writer = PlatformWriter(app, queue, tick=tick, pace_s=pace_s)

    def _stop(*_: Any) -> None:
        writer.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    from crowdleverage.reports.wiring import start_notify_worker

    # notifications and mail, derived from the events; mail while the writer is idle
    notify = start_notify_worker(st, idle=writer.idle)
    writer.recover()
    # the heap built so far (compiled contracts, the chain's state, the record, libraries)
    # lives as long as the process: out of the cyclic collector's reach, a full collection
    # scans only what came after it. Without this a full collection stopped the writer for
    # ~320 ms (measured with a gc callback under bench/commands.py), a command's p99 with it.
    gc.freeze()
    gc.callbacks.append(writer.stretches.gc_callback)  # collections in the stall log
    log.info("platform process ready", extra={"event": "platform_ready", "pid": os.getpid()})
    failed = False
    try:
        writer.run()
        writer.flush()
    except GroupCommitFailed:
        failed = True
        raise
    finally:
        writer.close()
        notify.stop.set()
        notify.join(timeout=10)
        if stress_runner is not None:
            stress_runner.join(timeout=30)
        if not failed:  # after a failed group commit memory may hold what the record does not
            platform.save()
        platform.close()


def _env(settings: Settings, config: Path | None, log_level: str) -> dict[str, str]:
    env = dict(os.environ)
    env["CROWDLEV_DATA_DIR"] = str(settings.data_dir.resolve())
    env["CROWDLEV_LOG_LEVEL"] = log_level
    if settings.smtp_host is not None:  # e.g. the demo's mail sink, started by `serve`
        env["CROWDLEV_SMTP_HOST"] = settings.smtp_host
        env["CROWDLEV_SMTP_PORT"] = str(settings.smtp_port)
    if config is not None:
        env["CROWDLEV_CONFIG"] = str(config.resolve())
    return env


def worker_app() -> Any:
    """uvicorn's factory in each API worker (settings from the environment `run_api` set)."""
    from crowdleverage.api.app import create_app
    from crowdleverage.api.logs import configure_logging
    from crowdleverage.config import load_settings

    configure_logging(os.environ.get("CROWDLEV_LOG_LEVEL", "warning"))
    return create_app(load_settings(), worker=True)


def run_api(
    settings: Settings,
    config: Path | None,
    host: str,
    port: int,
    workers: int,
    log_level: str,
) -> None:
    """uvicorn with `workers` processes (it starts a worker again if one dies)."""
    import uvicorn

    os.environ.update(_env(settings, config, log_level))
    uvicorn.run(
        "crowdleverage.service.process:worker_app", factory=True, host=host, port=port,
        workers=workers, log_level="warning", timeout_graceful_shutdown=3,
        http="crowdleverage.service.http_protocol:NoDelayHTTP",  # TCP_NODELAY: see there
    )  # fmt: skip


class PlatformChild:
    """The platform process as a child of `crowdlev serve`, started again when it dies."""

    def __init__(
        self,
        settings: Settings,
        config: Path | None,
        *,
        demo: bool,
        pace_s: float,
        start: dt.date,
        stress: bool,
        log_level: str,
        quiet: bool,
    ) -> None:
        from crowdleverage.service.queue import Queue

        self.settings = settings
        self.args = [sys.executable, "-m", "crowdleverage.cli", "platform",
                     "--pace-s", str(pace_s), "--from", start.isoformat(),
                     "--log-level", log_level, "--stress" if stress else "--no-stress"]  # fmt: skip
        if demo:
            self.args.append("--demo")
        self.env = _env(settings, config, log_level)
        self.quiet = quiet
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._queue_of: Callable[[], Queue] = self._open_queue
        self._queue: Queue | None = None

    def _open_queue(self) -> Any:
        from crowdleverage.custody.db import engine_from_settings
        from crowdleverage.service.queue import Queue

        if self._queue is None:
            self._queue = Queue(engine_from_settings(self.settings))
            self._queue.create_schema()
        return self._queue

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self._spawn()
        threading.Thread(target=self._watch, name="platform-watch", daemon=True).start()

    def _spawn(self) -> None:
        with self._lock:
            out = subprocess.DEVNULL if self.quiet else None
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=out)

    def _watch(self) -> None:
        quick_failures = 0
        while not self._stopping.is_set():
            assert self.proc is not None
            t0 = time.monotonic()
            code = self.proc.wait()
            if self._stopping.is_set():
                return
            quick_failures = quick_failures + 1 if time.monotonic() - t0 < 5 else 0
            log.warning("platform process exited; starting it again",
                        extra={"event": "platform_restart", "exit_code": code})  # fmt: skip
            if quick_failures >= 5:
                log.error("platform process keeps failing at start; giving up",
                          extra={"event": "platform_failed", "exit_code": code})  # fmt: skip
                return
            self._stopping.wait(0.5 * quick_failures)
            if not self._stopping.is_set():
                self._spawn()

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        queue = self._queue_of()
        while time.monotonic() < deadline:
            assert self.proc is not None
            info = queue.writer_info()
            if info is not None and info["pid"] == self.proc.pid and info["ready"]:
                return
            if self.proc.poll() is not None and self.proc.returncode not in (None, -9):
                time.sleep(0.6)  # the watcher may be starting it again
                if self.proc.poll() is not None:
                    raise ConfigError(
                        f"the platform process exited with {self.proc.returncode} at start"
                        " (its error is above)"
                    )
            time.sleep(0.1)
        raise ConfigError(f"the platform process was not ready within {timeout_s:g} s")

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
