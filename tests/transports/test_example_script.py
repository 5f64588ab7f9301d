"""examples/transports_failover.py runs and does what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "transports_failover.py"
SRC = Path(__file__).resolve().parents[2] / "src"


class TestFailoverExample:
    def test_messages_fail_over_to_files(self, tmp_path: Path) -> None:
        """The unreachable relay is skipped; three .eml files are written; no secret printed."""
        path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "PYTHONPATH": path}
        done = subprocess.run(
            [sys.executable, str(SCRIPT), str(tmp_path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert 0 == done.returncode, done.stderr
        lines = [line for line in done.stdout.splitlines() if "via file" in line]
        assert 3 == len(lines)
        assert all("accepted" in line for line in lines)
        assert 3 == len(list(tmp_path.glob("*.eml")))
        assert "relay-pass" not in done.stdout + done.stderr
