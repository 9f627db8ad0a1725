"""Chain gateway fixtures: dev keys, an embedded chain in a temporary data dir, and an anvil
node started on a random free port on 127.0.0.1 for the whole session."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.scenario import SCENARIO_ACTORS

DEV_SEED = 20160104


@pytest.fixture(scope="session")
def dev_keys() -> ActorKeys:
    return ActorKeys.dev(DEV_SEED, SCENARIO_ACTORS)


@pytest.fixture
def embedded(tmp_path: Path, dev_keys: ActorKeys) -> Iterator[EmbeddedChain]:
    chain = EmbeddedChain(tmp_path, dev_keys)
    yield chain
    chain.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def anvil_url(anvil_bin: str) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [anvil_bin, "--host", "127.0.0.1", "--port", str(port), "--silent",
         "--chain-id", "31337", "--code-size-limit", "24576"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"anvil exited with code {proc.returncode}")
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("anvil did not start within 30 s")
    yield url
    proc.terminate()
    proc.wait(timeout=10)
