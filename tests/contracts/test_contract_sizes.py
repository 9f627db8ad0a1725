"""Every deployable contract fits under the EIP-170 runtime size limit."""

from __future__ import annotations

import pytest

from crowdleverage.chain.artifacts import (
    CONTRACTS_DIR,
    DEPLOYABLES,
    EIP170_LIMIT_BYTES,
    artifact,
    deployer,
)

# every deployable source (CamelCase.vy), not only the core four: financing, roots, blueprints
ALL_DEPLOYABLES = sorted({*DEPLOYABLES, *(p.stem for p in CONTRACTS_DIR.glob("[A-Z]*.vy"))})


@pytest.mark.parametrize("name", ALL_DEPLOYABLES)
def test_runtime_under_eip170(name: str) -> None:
    size = artifact(name).runtime_size_bytes
    assert 0 < size < EIP170_LIMIT_BYTES, f"{name} runtime is {size} bytes"


@pytest.mark.parametrize("name", ALL_DEPLOYABLES)
def test_runtime_under_80_percent_of_eip170(name: str) -> None:
    """Headroom for fixes: every deployable (the split margin system included) stays under
    80% of the limit (19,660 bytes), counting the immutables appended to the deployed code."""
    immutables = deployer(name).compiler_data.global_ctx.immutable_section_bytes
    size = artifact(name).runtime_size_bytes + immutables
    assert size * 100 < 80 * EIP170_LIMIT_BYTES, f"{name} runtime is {size} bytes"
