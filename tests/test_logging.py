"""mailscale has no global side effects: silent import, silent events."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import structlog
from structlog.testing import capture_logs

from mailscale._log import get_logger

_SCRIPT = """
import logging, sys
before = (list(logging.getLogger().handlers), logging.getLogger().level)
import mailscale, mailscale.cli, mailscale._hot
from mailscale._log import get_logger
get_logger("mailscale.test").warning("test.event", detail=1)
get_logger("mailscale.test").error("test.error")
after = (list(logging.getLogger().handlers), logging.getLogger().level)
assert before == after, "root logger changed"
import structlog
assert not structlog.is_configured(), "structlog was configured by the library"
"""


class TestNoSideEffects:
    def test_import_and_events_print_nothing(self) -> None:
        """Importing mailscale and emitting warning events writes nothing to stdout or stderr."""
        env = {**os.environ, "PYTHONWARNINGS": "error"}
        proc = subprocess.run(
            [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, check=False
        )
        assert (0, "", "") == (proc.returncode, proc.stdout, proc.stderr)

    def test_events_reach_the_stdlib_logger(self, caplog: pytest.LogCaptureFixture) -> None:
        """Without a structlog configuration, events go to the stdlib logger ``mailscale``."""
        with caplog.at_level(logging.INFO, logger="mailscale"):
            get_logger("mailscale.test").bind(peer="x").info("test.bound", n=3)
        [record] = [r for r in caplog.records if r.name == "mailscale.test"]
        assert "event='test.bound'" in record.getMessage()
        assert "peer='x'" in record.getMessage()
        assert "n=3" in record.getMessage()

    def test_events_follow_a_structlog_configuration(self) -> None:
        """When the application configured structlog, events go through it."""
        with capture_logs() as logs:
            get_logger("mailscale.test").warning("test.captured", size=2)
        assert [{"event": "test.captured", "size": 2, "log_level": "warning"}] == logs
        assert structlog.is_configured()
