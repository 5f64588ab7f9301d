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
        done = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert (0, "") == (done.returncode, done.stderr)
        result = json.loads(done.stdout)
        assert {
            "using_extensions": False,
            "core": "mailscale._hot._core_py",
            "sign_plan": "mailscale._hot._core_dkim_plan_py",
            "gcra_table": "mailscale._hot._core_gcra_py",
            "events": [["core.extension_unavailable", "debug"]],
        } == result


class TestOneGateway:
    def test_library_reaches_the_core_only_through_the_gateway(self) -> None:
        """Outside ``mailscale._hot`` no module imports the compiled core or a twin module."""
        package = Path(mailscale.__file__).parent
        offenders = []
        for path in sorted(package.rglob("*.py")):
            if path.parent.name == "_hot":
                continue
            text = path.read_text("utf-8")
            for needle in ("mailscale._hot._", "from mailscale._hot import _"):
                if needle in text:
                    offenders.append((path.relative_to(package).as_posix(), needle))
        assert [] == offenders

    def test_compiled_parts_import_only_the_shared_decision(self) -> None:
        """The ``.pxi`` parts import nothing from the twin: only ``_decision`` is shared."""
        hot = Path(mailscale.__file__).parent / "_hot"
        imports = sorted(
            line.strip()
            for part in sorted(hot.glob("_core*.pxi"))
            for line in part.read_text("utf-8").splitlines()
            if line.startswith("from mailscale._hot")
        )
        assert [
            "from mailscale._hot._decision import ALLOWED as _ALLOWED, Decision as _Decision",
            "from mailscale._hot._decision import MAX_KEYS_PER_CALL as _MAX_KEYS_PER_CALL",
        ] == imports
