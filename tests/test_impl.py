"""The gateway ``mailscale._hot`` falls back to the twin, with one debug event, when
``_core`` cannot load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mailscale

# Set before mailscale is first imported: once loaded, ``from mailscale._hot import _core``
# finds the package attribute and a reload of _hot would not re-import it.
_PROBE = """
import json, sys
from structlog.testing import capture_logs
sys.modules["mailscale._hot._core"] = None  # the import system now raises ImportError for it
with capture_logs() as logs:
    import mailscale._hot as impl
print(json.dumps({
    "using_extensions": impl.USING_EXTENSIONS,
    "core": impl.core.__name__,
    "sign_plan": impl.SignPlan.__module__,
    "gcra_table": impl.GCRATable.__module__,
    "events": [(e["event"], e["log_level"]) for e in logs],
}))
"""


class TestFallback:
    def test_unimportable_extension_falls_back_to_twin(self) -> None:
        """With _core unimportable, the twin is chosen and one debug event says why."""
        env = {k: v for k, v in os.environ.items() if k != "MAILSCALE_NO_EXTENSIONS"}
        env["PYTHONPATH"] = str(Path(mailscale.__file__).parents[1])
        done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                              env=env, timeout=60, check=False)
        assert (0, "") == (done.returncode, done.stderr)
        result = json.loads(done.stdout)
        assert {
            "using_extensions": False,
            "core": "mailscale._hot._core_py",
            "sign_plan": "mailscale._hot._core_dkim_plan_py",
            "gcra_table": "mailscale._hot._core_gcra_py",
            "events": [["core.extension_unavailable", "debug"]],
        } == result
