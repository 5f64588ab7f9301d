"""Every public name has a docstring: each class and function in ``mailscale.__all__`` and in
each subpackage's ``__all__``, and each public method and property of those classes.

Public means listed in an ``__all__`` (a class's public members: names without a leading
underscore that mailscale defines, including those inherited from a mailscale base). The API
reference (mkdocs.yml) is generated from these docstrings, so an undocumented name would be a
name without an entry a user can read.
"""

from __future__ import annotations

import enum
import importlib
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

PACKAGES = (
    "mailscale",
    "mailscale.planning",
    "mailscale.signing",
    "mailscale.shaping",
    "mailscale.transports",
    "mailscale.auth",
    "mailscale.pipeline",
    "mailscale.message",
    "mailscale.errors",
)

# Docstrings Python writes for a class that has none of its own.
_GENERATED = {"An enumeration.", None, ""}


def _own_doc(obj: Any) -> str | None:
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else None


def _is_mailscale(obj: Any) -> bool:
    return str(getattr(obj, "__module__", "") or "").startswith("mailscale")


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    """The public methods and properties of *cls* that mailscale defines (own or inherited
    from a mailscale base): not attrs' generated methods, not those of builtins."""
    for klass in cls.__mro__:
        if not _is_mailscale(klass):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property):
                yield name, value
            elif inspect.isfunction(value) or inspect.isroutine(value):
                if _is_mailscale(value) or not hasattr(value, "__module__"):
                    yield name, value


def _public_objects() -> Iterator[tuple[str, Any]]:
    seen: set[int] = set()
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if id(obj) in seen or not (inspect.isclass(obj) or callable(obj)):
                continue
            if inspect.ismodule(obj):
                continue
            seen.add(id(obj))
            yield f"{package}.{name}", obj


def undocumented() -> list[str]:
    """Every public class, function, method or property without a docstring of its own."""
    missing = []
    for qualname, obj in _public_objects():
        if inspect.isclass(obj):
            if _own_doc(obj) in _GENERATED:
                missing.append(qualname)
            if issubclass(obj, (BaseException, enum.Enum)):
                members: Iterator[tuple[str, Any]] = iter(())
            else:
                members = _members(obj)
            done: set[str] = set()
            for name, member in members:
                if name in done:
                    continue
                done.add(name)
                if not (inspect.getdoc(member) or "").strip():
                    missing.append(f"{qualname}.{name}")
        elif not (_own_doc(obj) or "").strip():
            missing.append(qualname)
    return missing


def test_walk_finds_the_public_api() -> None:
    """The walk sees the public API (an empty walk would pass vacuously)."""
    names = {name for name, _ in _public_objects()}
    assert {"mailscale.Sender", "mailscale.DKIMSigner", "mailscale.pipeline.SQLiteOutbox"} <= names
    assert 120 <= len(names)


def test_every_public_name_has_a_docstring() -> None:
    """No public class, function, method or property lacks a docstring."""
    assert [] == undocumented()


def test_an_undocumented_method_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk reports a public method without a docstring (the check can fail)."""
    from mailscale.shaping import Shaper

    def bare(self: object) -> None:
        pass

    bare.__module__ = "mailscale.shaping._shaper"
    monkeypatch.setattr(Shaper, "bare", bare, raising=False)
    assert "mailscale.Shaper.bare" in undocumented()
