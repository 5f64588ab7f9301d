"""Whitespace-heavy newsletters for the DKIM benchmarks, built here (no files, no network).

Three templates of the kind bulk senders send, each a multipart/alternative
message (a quoted-printable text part and an HTML part) at about 2, 20 and
100 KB:

- ``promo``: table layout indented with spaces (two per level, 10 to 30 levels
  deep), inline CSS, the HTML part in 7bit.
- ``digest``: the same kind of layout indented with tabs and spaces, the HTML
  part quoted-printable (indentation kept, soft line breaks, ``=20`` at line ends).
- ``receipt``: multipart/related with the HTML part (spaces, inline styles with
  runs of spaces) and a base64 logo image.

``newsletter(size, seed, template)`` returns CRLF bytes; the same arguments
always give the same bytes.
"""

from __future__ import annotations

import base64
import quopri
import random

TEMPLATES = ("promo", "digest", "receipt")

_WORDS = (
    "the quick brown fox jumps over lazy dog mail scale deliver inbox sender domain "
    "message campaign unsubscribe preference account update weekly news offer"
).split()
_STYLES = [
    'style="padding: 0 24px;  font-family: Helvetica, Arial, sans-serif;  color: #333333;"',
    'style="font-size:16px; line-height:24px;   margin:0;"',
    'style="border-collapse: collapse;   mso-table-lspace: 0pt;  mso-table-rspace: 0pt;"',
    'align="center"  valign="top"  width="600"',
]


def _header(seed: int, template: str, content_type: bytes) -> bytes:
    return (
        b"From: News <news@example.com>\r\n"
        b"To: reader%d@example.net\r\n"
        b"Subject: Weekly %s %d\r\n"
        b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        b"Message-ID: <%d.%s@example.com>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: %s\r\n"
        b"List-Unsubscribe: <https://example.com/u/%d>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        b"\r\n"
    ) % (seed, template.encode(), seed, seed, template.encode(), content_type, seed)


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _html(rng: random.Random, size: int, indent: str) -> str:
    """Nested tables until ``size`` characters, each line indented by its depth."""
    lines = ["<!DOCTYPE html>", "<html>", f"{indent}<head>"]
    lines.append(f"{indent * 2}<style>")
    lines.append(f"{indent * 3}td  {{ padding: 0;   margin: 0; }}")
    lines.append(f"{indent * 2}</style>")
    lines.append(f"{indent}</head>")
    lines.append(f"{indent}<body>")
    depth = 2
    total = sum(len(line) + 2 for line in lines)
    while total < size:
        # A block: open a few nested levels, fill them, close them again.
        opened = []
        for _ in range(rng.randint(3, 8)):
            tag = rng.choice(["table", "tr", "td", "div", "center"])
            style = rng.choice(_STYLES) if rng.random() < 0.6 else ""
            lines.append(f"{indent * depth}<{tag} {style}>".replace(" >", ">"))
            opened.append(tag)
            depth += 1
        for _ in range(rng.randint(1, 4)):
            lines.append(f"{indent * depth}<p {rng.choice(_STYLES)}>")
            lines.append(f"{indent * (depth + 1)}{_sentence(rng, rng.randint(4, 12))}")
            link = f"https://example.com/{rng.randint(0, 9**6)}"
            lines.append(
                f'{indent * (depth + 1)}<a href="{link}"  target="_blank">{_sentence(rng, 2)}</a>'
            )
            lines.append(f"{indent * depth}</p>")
            if rng.random() < 0.2:
                lines.append("")
        for tag in reversed(opened):
            depth -= 1
            lines.append(f"{indent * depth}</{tag}>")
        total = sum(len(line) + 2 for line in lines)
    lines += [f"{indent}</body>", "</html>"]
    return "\r\n".join(lines) + "\r\n"


def _text(rng: random.Random, size: int) -> str:
    out = []
    total = 0
    while total < size:
        line = _sentence(rng, rng.randint(6, 12))
        out.append(line)
        total += len(line) + 2
    return "\r\n".join(out) + "\r\n"


def _qp(text: str) -> bytes:
    return quopri.encodestring(text.replace("\r\n", "\n").encode()).replace(b"\n", b"\r\n")


def newsletter(size: int, seed: int = 0, template: str = "promo") -> bytes:
    """A multipart newsletter of about ``size`` bytes with indented HTML (see the module)."""
    rng = random.Random(f"{template}-{size}-{seed}")
    boundary = b"==b%d%s==" % (seed, template.encode())
    text_share = size // 6
    if template == "promo":
        html = _html(rng, size - text_share - 900, "  ").encode()
        html_part = b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit"
    elif template == "digest":
        html = _qp(_html(rng, int((size - text_share - 900) * 0.9), "\t "))
        html_part = (
            b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
        )
    elif template == "receipt":
        html = _html(rng, (size - text_share - 900) * 3 // 4, "    ").encode()
        html_part = b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit"
    else:
        raise ValueError(f"unknown template {template!r}; one of {TEMPLATES}")
    text = _qp(_text(rng, text_share))
    parts = [
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + text,
        html_part + b"\r\n\r\n" + html,
    ]
    if template == "receipt":
        image = bytes(rng.getrandbits(8) for _ in range(max(size // 6, 100)))
        b64 = base64.encodebytes(image).replace(b"\n", b"\r\n")
        parts.append(
            b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-ID: <logo@example.com>\r\n"
            b'Content-Disposition: inline; filename="logo.png"\r\n\r\n' + b64
        )
        content_type = b'multipart/related; boundary="%s"; type="multipart/alternative"' % boundary
    else:
        content_type = b'multipart/alternative; boundary="%s"' % boundary
    body = b"This is a multi-part message in MIME format.\r\n\r\n"
    for part in parts:
        body += b"--" + boundary + b"\r\n" + part + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    return _header(seed, template, content_type) + body


if __name__ == "__main__":
    import sys

    from mailscale._hot import _core_py

    for template in TEMPLATES:
        for size in (2_000, 20_000, 100_000):
            msg = newsletter(size, 0, template)
            _, start = _core_py._split_message(msg)
            canon = _core_py._canon_body_relaxed(msg[start:])
            sys.stdout.write(
                f"{template:8s} {size:7d}: {len(msg):7d} bytes, relaxed body "
                f"{len(canon)} of {len(msg) - start} bytes\n"
            )
