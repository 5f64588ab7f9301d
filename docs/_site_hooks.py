"""mkdocs hook: a guide added to docs/ (e.g. docs/scaling.md) joins the site's "Guides"
section even before mkdocs.yml lists it, so a new page is never left out of the site (and
never fails the strict build as an omitted file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _listed(nav: Any) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, dict):
        return set().union(*(_listed(v) for v in nav.values()))
    if isinstance(nav, list):
        return set().union(*(_listed(v) for v in nav)) if nav else set()
    return set()


def on_config(config: Any) -> Any:
    nav = config["nav"]
    listed = _listed(nav)
    docs = Path(config["docs_dir"])
    new = sorted(p.name for p in docs.glob("*.md") if p.name not in listed)
    for section in nav:
        if isinstance(section, dict) and "Guides" in section:
            section["Guides"].extend({_title(docs / name): name} for name in new)
    return config


def _title(page: Path) -> str:
    for line in page.read_text("utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return page.stem
