"""Blocking forms of coroutine functions, callable also from inside a running event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

__all__ = ["blocking", "run_sync"]

T = TypeVar("T")
P = ParamSpec("P")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, also from a thread that already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def blocking(fn: Callable[P, Coroutine[Any, Any, T]], doc: str) -> Callable[P, T]:
    """The blocking form of the coroutine function *fn*: same arguments, run by :func:`run_sync`.

    Named after *fn* without its ``_async`` suffix, documented by *doc*.
    """

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_sync(fn(*args, **kwargs))

    call.__name__ = call.__qualname__ = fn.__name__.removesuffix("_async")
    call.__doc__ = doc
    return call
