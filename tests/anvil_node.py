"""An anvil node for the tests: a free port on 127.0.0.1, EIP-170's code size limit, the
caller's extra flags (`--accounts`, `--chain-id`, `--timestamp` …); yields its URL and stops
it afterwards. Imported by the chain, financing and flows tests (tests/ is on sys.path
through tests/conftest.py)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator

from crowdleverage.chain.artifacts import EIP170_LIMIT_BYTES


@contextlib.contextmanager
def anvil(anvil_bin: str, *extra: str) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [anvil_bin, "--host", "127.0.0.1", "--port", str(port), "--silent",
         "--code-size-limit", str(EIP170_LIMIT_BYTES), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"anvil did not start (exit code {proc.poll()})") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
