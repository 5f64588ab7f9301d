"""Every ```python example of docs/shaping.md runs on its own (Redis examples on a local server)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

_DOC = Path(__file__).resolve().parents[2] / "docs" / "shaping.md"
_BLOCKS = re.findall(r"^```python\n(.*?)^```", _DOC.read_text(encoding="utf-8"), re.M | re.S)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A private redis-server for the Redis examples."""
    pytest.importorskip("redis", reason="redis-py is not installed (the 'redis' extra)")
    from peers.redis_server import RedisServer, redis_server_binary

    if redis_server_binary() is None:
        pytest.skip("redis-server binary not found on PATH (Debian: apt-get install redis-server)")
    with RedisServer() as server:
        yield server.url


class TestShapingGuide:
    def test_guide_has_examples(self) -> None:
        """The guide's examples are found (a changed fence would silently test nothing)."""
        assert 3 <= len(_BLOCKS)

    @pytest.mark.parametrize("source", _BLOCKS, ids=[f"block{i + 1}" for i in range(len(_BLOCKS))])
    def test_example_runs(
        self, source: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The example runs in a fresh namespace, with nothing defined beforehand."""
        if "import redis" in source:
            monkeypatch.setenv("REDIS_URL", request.getfixturevalue("redis_url"))
        namespace: dict[str, object] = {"__name__": "__shaping_guide__"}
        exec(compile(source, str(_DOC), "exec"), namespace)
        assert 1 < len(namespace)
