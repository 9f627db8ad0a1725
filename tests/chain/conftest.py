"""Chain gateway fixtures: dev keys, an embedded chain in a temporary data dir, and an anvil
node started on a random free port on 127.0.0.1 for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from anvil_node import anvil

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


@pytest.fixture(scope="session")
def anvil_url(anvil_bin: str) -> Iterator[str]:
    with anvil(anvil_bin, "--chain-id", "31337") as url:
        yield url
