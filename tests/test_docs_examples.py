"""Every ```python block of README.md and docs/*.md runs, as written, in the test suite.

Why sybil rather than pytest-examples: the guides' blocks build on each other (a page
generates a key in one block and signs with it in the next), and sybil runs a document's
blocks in order in one namespace, as a reader does; it also runs ``>>>`` blocks as doctests
and has the two Markdown directives the pages need, ``<!-- skip: next "reason" -->`` for a
fragment and ``<!-- invisible-code-block: python -->`` for setup a reader need not see.
pytest-examples runs each block on its own and is built around formatting and linting
examples, which the pages do not need.

How a page runs (one test per page):

* its blocks run in order in one namespace, in a fresh temporary directory (a block that
  writes ``s2026.pem`` writes it there);
* names the page's blocks use for a service are injected before the first block by the
  page's setup, below (``PAGE_SETUP``): each starts the same loopback peers as the tests
  (``tests/peers``: aiosmtpd, the ESP API peers, the dnslib DNS server, redis-server) and
  names them, e.g. ``smtp_url``; each page says in an HTML comment which names it gets;
* a block meant as a fragment is preceded by ``<!-- skip: next "why" -->``; ``SKIPPED``
  lists every such block, so a new skip is a decision made here, not an accident;
* ``sh``, ``toml`` and ``json`` blocks are not executed (commands and file contents: the
  README's "Two commands" block is run by ``.ci/run``, the CLI by ``tests/test_cli.py``).
"""

from __future__ import annotations

import contextlib
import doctest
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import SkipTest

import pytest
from sybil import Sybil
from sybil.example import NotEvaluated
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# (page, first line of the skipped block) -> reason: every fragment, and nothing else.
SKIPPED: dict[tuple[str, int], str] = {
    ("plugins.md", 55): "a fragment: the shape of the class; "
    "the whole class is examples/mailscale-example-plugin",
}

_SYBIL = Sybil(
    parsers=[
        PythonCodeBlockParser(doctest_optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE),
        SkipParser(),
    ],
)

Setup = Callable[[contextlib.ExitStack, Path], dict[str, Any]]


def _smtp(stack: contextlib.ExitStack) -> str:
    """An aiosmtpd peer on loopback that accepts everything; its ``smtp://`` URL."""
    from peers.smtp_peer import start_peer

    peer = start_peer()
    stack.callback(peer.stop)
    return f"smtp://{peer.host}:{peer.port}?tls=none"


def _sendgrid(stack: contextlib.ExitStack) -> str:
    """The loopback peer of SendGrid's API; a ``sendgrid://`` URL aimed at it."""
    from peers.sendgrid_peer import SendGridPeer

    peer = stack.enter_context(SendGridPeer("SG.docs-key"))
    return f"sendgrid://SG.docs-key@default?base_url={peer.url}"


def _message(n: int = 0) -> bytes:
    return (
        f"From: a@example.com\r\nTo: b{n}@example.net\r\nSubject: hello {n}\r\n"
        f"Message-ID: <doc{n}@example.com>\r\n\r\nHello.\r\n"
    ).encode()


def _envelopes() -> list[Any]:
    from mailscale import Envelope

    return [
        Envelope(sender="a@example.com", recipients=(f"b{n}@example.net",), message=_message(n))
        for n in range(3)
    ]


def _transports(stack: contextlib.ExitStack, tmp: Path) -> dict[str, Any]:
    import trustme

    trustme.CA().cert_pem.write_to_path(str(tmp / "corp-ca.pem"))
    return {"smtp_url": _smtp(stack)}


def _providers(stack: contextlib.ExitStack, tmp: Path) -> dict[str, Any]:
    return {"sendgrid_url": _sendgrid(stack), "envelopes": _envelopes()}


def _pipeline(stack: contextlib.ExitStack, tmp: Path) -> dict[str, Any]:
    from mailscale.signing import generate_key
    from mailscale.signing.keys import private_key_pem

    (tmp / "dkim.pem").write_bytes(private_key_pem(generate_key("ed25519")))
    return {"smtp_url": _smtp(stack), "envelopes": _envelopes()}


def _dkim(stack: contextlib.ExitStack, tmp: Path) -> dict[str, Any]:
    """Keys for every selector the page signs with, published on a local DNS server."""
    from mailscale.signing import dns_record_strings, generate_key
    from mailscale.signing.keys import private_key_pem
    from peers.dns_server import DNSServer, Zone

    keys = {
        "s2026": generate_key("rsa", 2048),
        "ed2026": generate_key("ed25519"),
        "rsa2026": generate_key("rsa", 2048),
    }
    (tmp / "s2026.pem").write_bytes(private_key_pem(keys["s2026"]))
    zone = Zone()
    for selector, key in keys.items():
        zone.txt(f"{selector}._domainkey.example.com", *dns_record_strings(key))
    server = stack.enter_context(DNSServer(zone))
    return {
        "resolver": server.client(),
        "message_bytes": _message(),
        "messages": [_message(n) for n in range(4)],
        "ed25519_key": keys["ed2026"],
        "rsa_key": keys["rsa2026"],
    }


def _plugins(stack: contextlib.ExitStack, tmp: Path) -> dict[str, Any]:
    """The example plugin, importable and registered as an installed distribution would be
    (a dist-info beside its source on sys.path: no build, no network)."""
    import sys

    from mailscale.transports.registry import reset_plugins

    plugin = ROOT / "examples" / "mailscale-example-plugin"
    info = tmp / "site" / "mailscale_example_plugin-0.1.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mailscale-example-plugin\nVersion: 0.1.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[mailscale.transports]\nexample+log = mailscale_example_plugin:LogTransport\n"
    )
    for path in (str(plugin / "src"), str(tmp / "site")):
        sys.path.insert(0, path)
        stack.callback(sys.path.remove, path)
    reset_plugins()
    stack.callback(reset_plugins)
    stack.callback(sys.modules.pop, "mailscale_example_plugin", None)
    return {}


def _shaping(stack: contextlib.ExitStack, tmp: Path) -> dict[str, Any]:
    from peers.redis_server import RedisServer, redis_server_binary

    if redis_server_binary() is None:
        raise SkipTest("redis-server not found on PATH (Debian: apt-get install redis-server)")
    server = stack.enter_context(RedisServer())
    os.environ["REDIS_URL"] = server.url
    stack.callback(os.environ.pop, "REDIS_URL", None)
    return {}


def _dns(stack: contextlib.ExitStack, tmp: Path) -> dict[str, Any]:
    """The dnslib DNS server with the auth tests' zones; ``resolver`` is its ``host:port``."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "auth"))
    stack.callback(sys.path.remove, str(ROOT / "tests" / "auth"))
    from auth_zones import build_zone, make_keys

    from peers.dns_server import DNSServer

    server = stack.enter_context(DNSServer(build_zone(make_keys())))
    return {"resolver": server.nameserver}


PAGE_SETUP: dict[str, Setup] = {
    "transports.md": _transports,
    "providers.md": _providers,
    "pipeline.md": _pipeline,
    "shaping.md": _shaping,
    "auth.md": _dns,
    "dkim.md": _dkim,
    "plugins.md": _plugins,
}


@contextlib.contextmanager
def _in_directory(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _block_lines(page: Path) -> list[int]:
    """The line of each ```python fence of *page*."""
    text = page.read_text("utf-8")
    return [text.count("\n", 0, m.start()) + 1 for m in re.finditer(r"^```python\n", text, re.M)]


def _run_page(page: Path, tmp_path: Path) -> tuple[set[int], list[tuple[int, str]]]:
    """Run *page*'s examples in order; the fence lines of the blocks that ran (a doctest
    block is several examples) and the (line, reason) of each block skipped."""
    document = _SYBIL.parse(page)
    fences = _block_lines(page)
    ran: set[int] = set()
    skipped: list[tuple[int, str]] = []
    with contextlib.ExitStack() as stack, _in_directory(tmp_path):
        setup = PAGE_SETUP.get(page.name)
        if setup is not None:
            document.namespace.update(setup(stack, tmp_path))
        document.namespace["__name__"] = f"docs_{page.stem}"
        for example in document:
            is_code = not isinstance(example.parsed, tuple)
            try:
                example.evaluate()
            except SkipTest as skip:
                skipped.append((example.line, str(skip)))
                continue
            except NotEvaluated:
                continue
            except Exception as exc:
                raise AssertionError(f"{page.name}:{example.line}: {exc!r}") from exc
            if is_code:
                ran.add(max(line for line in fences if line <= example.line))
    return ran, skipped


def _code_blocks(page: Path) -> int:
    return len(_block_lines(page))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    """Every python block of the page runs, except the fragments listed in SKIPPED."""
    ran, skipped = _run_page(page, tmp_path)
    expected_skips = {line: why for (name, line), why in SKIPPED.items() if name == page.name}
    assert expected_skips == dict(skipped)
    assert set(_block_lines(page)) == ran | {line for line, _ in skipped}


def test_every_page_is_covered() -> None:
    """The pages found are the README and the guides (a moved docs/ would test nothing)."""
    names = {p.name for p in PAGES}
    assert {"README.md", "transports.md", "dkim.md", "planning.md", "pipeline.md"} <= names
    assert set(PAGE_SETUP) <= names
    assert 20 <= sum(_code_blocks(p) for p in PAGES)


def test_docstring_examples_run() -> None:
    """The ``>>>`` examples in mailscale's docstrings (shown in the API reference) pass."""
    import importlib
    import pkgutil

    import mailscale

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for info in pkgutil.walk_packages(mailscale.__path__, "mailscale."):
        if info.name in ("mailscale.__main__", "mailscale._core"):
            continue
        module = importlib.import_module(info.name)
        for test in finder.find(module, info.name):
            runner.run(test)
    results = runner.summarize(verbose=False)
    assert 0 == results.failed
    assert 3 <= results.attempted


def _commands(text: str) -> list[str]:
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block is not None
    return [
        line.split("#")[0].strip()
        for line in block.group(1).splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def test_home_page_shows_the_readme_commands() -> None:
    """The site's home page shows the README's two commands, as CI runs them."""
    readme = (ROOT / "README.md").read_text("utf-8")
    section = re.search(r"^## Two commands\n(.*?)(?=^## )", readme, re.S | re.M)
    assert section is not None
    home = (ROOT / "docs" / "index.md").read_text("utf-8")
    assert _commands(section.group(1)) == _commands(home)
