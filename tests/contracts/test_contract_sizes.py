"""Every deployable contract fits under the EIP-170 runtime size limit."""

from __future__ import annotations

import pytest

from crowdleverage.chain.artifacts import DEPLOYABLES, EIP170_LIMIT_BYTES, artifact


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_runtime_under_eip170(name: str) -> None:
    size = artifact(name).runtime_size_bytes
    assert 0 < size < EIP170_LIMIT_BYTES, f"{name} runtime is {size} bytes"
