"""Take an outgoing message apart for the JSON providers (SendGrid, Postmark).

JSON APIs build the MIME themselves, so a message (bytes or an
``EmailMessage``) is split into its sender, header recipients, subject, text
and HTML bodies, attachments and the remaining headers. Raw-MIME transports
(Mailgun ``messages.mime``, SES raw) never go through here: their bytes pass
unchanged.
"""

from __future__ import annotations

import email.policy
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses

import attrs

from mailscale.errors import HeaderInjection
from mailscale.message import Envelope, check_header_value

__all__ = [
    "Attachment",
    "Body",
    "BodyCache",
    "Decomposed",
    "decompose",
    "format_address",
    "quoted_string",
    "split_recipients",
]

_NOT_SIMPLE = re.compile(r'[",;()\\]')
# Outside RFC 5322 atext (RFC 6532 adds every non-ASCII character) and the space between words.
_NOT_PHRASE = re.compile(r"[^A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ \u0080-\U0010ffff]")
_SPACE = re.compile(r"\s")
_UNFOLD = re.compile(r"\n(?=[ \t])")

#: Headers a JSON provider derives from its own fields; never copied as custom headers.
STRUCTURAL_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "reply-to",
        "sender",
        "date",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "content-id",
        "return-path",
        "received",
        "dkim-signature",
    }
)


@attrs.frozen(kw_only=True)
class Attachment:
    """One attachment or inline part."""

    filename: str
    content: bytes
    content_type: str
    inline: bool = False
    content_id: str | None = None


@attrs.frozen(kw_only=True)
class Body:
    """The content of a message: bodies and attachments."""

    text: str | None
    html: str | None
    other_content: tuple[tuple[str, str], ...]
    attachments: tuple[Attachment, ...]


@attrs.frozen(kw_only=True)
class Decomposed:
    """The fields a JSON provider needs, taken from one message.

    Addresses (``to``, ``cc``, ``reply_to``) are ``(display name, address)``
    pairs, the names decoded (RFC 2047) to text, ``""`` when absent.
    ``content_key`` is equal for messages whose body (content and
    attachments) is byte-identical, so callers can group them cheaply; None
    when unknown.
    """

    from_name: str
    from_email: str
    to: tuple[tuple[str, str], ...]
    cc: tuple[tuple[str, str], ...]
    reply_to: tuple[tuple[str, str], ...]
    subject: str | None
    body: Body
    headers: tuple[tuple[str, str], ...]
    content_key: Hashable | None = None

    @property
    def text(self) -> str | None:
        return self.body.text

    @property
    def html(self) -> str | None:
        return self.body.html

    @property
    def other_content(self) -> tuple[tuple[str, str], ...]:
        return self.body.other_content

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        return self.body.attachments

    def names(self) -> dict[str, str]:
        """Display names the To and Cc headers give, by lower-cased address (the first wins)."""
        out: dict[str, str] = {}
        for name, addr in (*self.to, *self.cc):
            if name:
                out.setdefault(addr.lower(), name)
        return out


def _size_of(value: object) -> int:
    """The bytes a cache key or body holds in strings and bytes (an upper-bound estimate)."""
    if isinstance(value, (bytes, str)):
        return len(value) * (1 if isinstance(value, bytes) or value.isascii() else 4)
    if isinstance(value, tuple):
        return sum(_size_of(v) for v in value)
    if isinstance(value, (Body, Attachment)):
        return sum(_size_of(getattr(value, a.name)) for a in attrs.fields(type(value)))
    return 0


class BodyCache:
    """A small LRU of decoded bodies: a batch often repeats one body for many recipients.

    Bounded in entries (``maxsize``) and in bytes (``max_bytes``, counting the raw
    body in the key and the decoded body); a body above a quarter of ``max_bytes``
    is not kept.
    """

    def __init__(self, maxsize: int = 64, max_bytes: int = 32 << 20) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.accounted = 0
        self._items: OrderedDict[Hashable, tuple[Body, int]] = OrderedDict()
        self._lock = threading.Lock()  # a transport may send from several threads

    def get(self, key: Hashable) -> Body | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: Hashable, body: Body) -> None:
        size = _size_of(key) + _size_of(body) + 512
        if size > self.max_bytes // 4:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = (body, size)
            self.accounted += size
            while len(self._items) > self.maxsize or self.accounted > self.max_bytes:
                self.accounted -= self._items.popitem(last=False)[1][1]


def _text_of(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else bytes(content).decode("utf-8", "replace")


def _bytes_of(part: EmailMessage) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _body_of(msg: EmailMessage) -> Body:
    text = html = None
    other: list[tuple[str, str]] = []
    attachments: list[Attachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        assert isinstance(part, EmailMessage)
        ctype = part.get_content_type()
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        cid = part.get("Content-ID")
        is_text = part.get_content_maintype() == "text"
        if disposition != "attachment" and filename is None and is_text:
            content = _text_of(part)
            if ctype == "text/plain" and text is None:
                text = content
                continue
            if ctype == "text/html" and html is None:
                html = content
                continue
            if disposition is None:
                other.append((ctype, content))
                continue
        inline = disposition == "inline" or (disposition is None and cid is not None)
        attachments.append(
            Attachment(
                filename=filename or f"part-{len(attachments) + 1}",
                content=_bytes_of(part),
                content_type=ctype,
                inline=inline,
                content_id=str(cid).strip().strip("<>") if cid else None,
            )
        )
    return Body(text=text, html=html, other_content=tuple(other), attachments=tuple(attachments))


def _decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words, when there are any."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, ValueError):
        return value


def _simple_address(value: str) -> tuple[str, str] | None:
    """``addr`` or ``Name <addr>`` without quotes, comments or lists; None otherwise."""
    if _NOT_SIMPLE.search(value):
        return None
    lt = value.find("<")
    if lt == -1:
        addr, name = value.strip(), ""
    else:
        if not value.endswith(">") or value.count("<") != 1:
            return None
        addr, name = value[lt + 1 : -1].strip(), value[:lt].strip()
    if "@" not in addr or _SPACE.search(addr):
        return None
    return name, addr


def _addresses(values: list[str]) -> list[tuple[str, str]]:
    if not values:
        return []
    if len(values) == 1:
        simple = _simple_address(values[0].strip())
        if simple is not None:
            return [(_decode_words(simple[0]), simple[1])]
    return [(_decode_words(n), a) for n, a in getaddresses(values) if a]


def _raw_headers(raw: bytes) -> tuple[list[tuple[str, str]], bytes] | None:
    """Header fields (unfolded, RFC 5322 section 2.2.3) and body of *raw*; None if unusual."""
    # The first empty line ends the header block (bytes.find is far cheaper than a regex).
    crlf, lf = raw.find(b"\r\n\r\n"), raw.find(b"\n\n")
    if crlf == -1 and lf == -1:
        return None
    if lf == -1 or (crlf != -1 and crlf < lf):
        end, body_start = crlf, crlf + 4
    else:
        end, body_start = lf, lf + 2
    head = raw[:end].decode("utf-8", "replace")
    if "\r" in head:
        head = head.replace("\r\n", "\n")
    if head[:1] in (" ", "\t"):
        return None
    if "\n " in head or "\n\t" in head:
        head = _UNFOLD.sub("", head)
    fields: list[tuple[str, str]] = []
    for line in head.split("\n"):
        name, colon, value = line.partition(":")
        if not colon or not name or name[-1] in " \t\r":
            return None
        fields.append((name, value.strip()))
    return fields, raw[body_start:]


def _fast(env: Envelope, raw: bytes, cache: BodyCache | None) -> Decomposed | None:
    split = _raw_headers(raw)
    if split is None:
        return None
    fields, payload = split
    by_name: dict[str, list[str]] = {}
    for name, value in fields:
        by_name.setdefault(name.lower(), []).append(value)
    ctype = (by_name.get("content-type") or [""])[0]
    cte = (by_name.get("content-transfer-encoding") or [""])[0]
    key = (ctype, cte, payload)
    body = cache.get(key) if cache is not None else None
    if body is None:
        mini = b"MIME-Version: 1.0\r\n"
        if ctype:
            mini += b"Content-Type: " + ctype.encode() + b"\r\n"
        if cte:
            mini += b"Content-Transfer-Encoding: " + cte.encode() + b"\r\n"
        parsed = BytesParser(policy=email.policy.default).parsebytes(mini + b"\r\n" + payload)
        assert isinstance(parsed, EmailMessage)
        body = _body_of(parsed)
        if cache is not None:
            cache.put(key, body)
    froms = _addresses(by_name.get("from", []))
    from_name, from_email = froms[0] if froms else ("", env.sender)
    subject = by_name.get("subject")
    return Decomposed(
        from_name=from_name,
        from_email=from_email,
        to=tuple(_addresses(by_name.get("to", []))),
        cc=tuple(_addresses(by_name.get("cc", []))),
        reply_to=tuple(_addresses(by_name.get("reply-to", []))),
        subject=_decode_words(subject[0]) if subject else None,
        body=body,
        headers=tuple(
            (n, _decode_words(v)) for n, v in fields if n.lower() not in STRUCTURAL_HEADERS
        ),
        content_key=key,
    )


_BAD_FIELD_NAME = re.compile(r"[^\x21-\x39\x3b-\x7e]")


def _checked(parts: Decomposed) -> Decomposed:
    """Return *parts* when no decoded value could inject a header, else raise.

    RFC 2047 encoded words are decoded before the values go into JSON, where
    the provider writes them back as header lines: an encoded CR/LF
    (``=?utf-8?q?hi=0D=0ABcc:...?=``) would become a new header there.

    Raises:
        HeaderInjection: naming the header.
    """
    check_header_value("From", parts.from_name)
    check_header_value("From", parts.from_email)
    for name, pairs in (("To", parts.to), ("Cc", parts.cc), ("Reply-To", parts.reply_to)):
        for display, addr in pairs:
            check_header_value(name, display)
            check_header_value(name, addr)
    if parts.subject is not None:
        check_header_value("Subject", parts.subject)
    for name, value in parts.headers:
        if not name or _BAD_FIELD_NAME.search(name):
            raise HeaderInjection(f"header name {name[:40]!r} is not a valid field name")
        check_header_value(name, value)
    return parts


def decompose(env: Envelope, cache: BodyCache | None = None) -> Decomposed:
    """Split *env*'s message into the fields a JSON provider takes.

    Raw bytes take a fast path (own header split, bodies decoded once per
    distinct body through *cache*); an ``EmailMessage`` is read directly.
    Every decoded header value is checked for line breaks.

    Raises:
        HeaderInjection: a decoded value would inject a header.
    """
    return _checked(_decompose(env, cache))


def _decompose(env: Envelope, cache: BodyCache | None) -> Decomposed:
    msg = env.message
    if isinstance(msg, (bytes, bytearray, memoryview)):
        fast = _fast(env, bytes(msg), cache)
        if fast is not None:
            return fast
    if not isinstance(msg, EmailMessage) or isinstance(msg.policy, type(email.policy.compat32)):
        parsed = BytesParser(policy=email.policy.default).parsebytes(env.to_bytes())
        assert isinstance(parsed, EmailMessage)
        msg = parsed

    def values(name: str) -> list[str]:
        return [str(v) for v in msg.get_all(name, [])]

    froms = _addresses(values("From"))
    from_name, from_email = froms[0] if froms else ("", env.sender)
    subject = msg.get("Subject")
    return Decomposed(
        from_name=from_name,
        from_email=from_email,
        to=tuple(_addresses(values("To"))),
        cc=tuple(_addresses(values("Cc"))),
        reply_to=tuple(_addresses(values("Reply-To"))),
        subject=str(subject) if subject is not None else None,
        body=_body_of(msg),
        headers=tuple(
            (name, str(value))
            for name, value in msg.items()
            if name.lower() not in STRUCTURAL_HEADERS
        ),
    )


def split_recipients(
    env: Envelope, parts: Decomposed
) -> list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    """Map envelope recipients onto (to, cc, bcc) lists.

    Recipients named in the To header go to ``to``, those in Cc to ``cc``,
    the rest to ``bcc``. When none is named in To (all hidden), each recipient
    gets its own (to,) entry so no hidden address is shown to another.
    """
    to_set = {a.lower() for _, a in parts.to}
    cc_set = {a.lower() for _, a in parts.cc}
    to = tuple(r for r in env.recipients if r.lower() in to_set)
    cc = tuple(r for r in env.recipients if r.lower() in cc_set and r.lower() not in to_set)
    bcc = tuple(r for r in env.recipients if r.lower() not in to_set and r.lower() not in cc_set)
    if not to:
        return [((r,), (), ()) for r in env.recipients]
    return [(to, cc, bcc)]


def format_address(name: str, address: str) -> str:
    """``address``, or ``name <address>`` with the name as RFC 5322 wants it, never encoded.

    For providers that take a formatted address string (Postmark): a name that
    is not a plain phrase (a comma, a quote, a dot, ...) becomes a quoted
    string with ``\\`` and ``"`` escaped (RFC 5322 section 3.2.4); non-ASCII
    text stays as it is (RFC 6532), since the provider encodes the header it
    writes. ``email.utils.formataddr`` would RFC 2047-encode it instead, and a
    JSON API shows such a name to the recipient still encoded.
    """
    if not name:
        return address
    if _NOT_PHRASE.search(name) or name != name.strip() or "  " in name:
        name = quoted_string(name)
    return f"{name} <{address}>"


def quoted_string(text: str) -> str:
    """*text* as an RFC 5322 quoted-string (section 3.2.4): in quotes, ``\\`` and ``"`` escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
