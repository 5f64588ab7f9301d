"""After `mkdocs build`: every name of mailscale.__all__ and of each subpackage's __all__
has an entry (an anchor) in the built API reference. Usage: check_reference.py SITE_DIR

``check_reference.py --requirements pyproject.toml`` prints the docs extra's requirements,
one a line (what .ci/run installs to build the site).
"""

from __future__ import annotations

import html
import importlib
import re
import sys
from pathlib import Path

PACKAGES = ("planning", "signing", "shaping", "transports", "auth", "pipeline", "message", "errors")


def main(site: Path) -> int:
    ids: set[str] = set()
    for page in (site / "reference").rglob("*.html"):
        found = re.findall(r'id="(mailscale\.[^"]+)"', page.read_text("utf-8"))
        ids |= {html.unescape(i) for i in found}
    tails = {i.rsplit(".", 1)[-1] for i in ids}
    top = importlib.import_module("mailscale")
    missing = [f"mailscale.{n}" for n in top.__all__ if n != "__version__" and n not in tails]
    for pkg in PACKAGES:
        module = importlib.import_module(f"mailscale.{pkg}")
        missing += [f"mailscale.{pkg}.{n}" for n in module.__all__ if n not in tails]
    if missing:
        print("not in the API reference: " + ", ".join(missing), file=sys.stderr)
        return 1
    print(f"API reference: {len(ids)} entries; every public name has one")
    return 0


def requirements(pyproject: Path) -> int:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    data = tomllib.loads(pyproject.read_text("utf-8"))
    print("\n".join(data["project"]["optional-dependencies"]["docs"]))
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--requirements":
        sys.exit(requirements(Path(sys.argv[2])))
    sys.exit(main(Path(sys.argv[1])))
