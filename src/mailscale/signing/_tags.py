"""DKIM tag=value lists (RFC 6376 section 3.2), shared by signatures and key records."""

from __future__ import annotations

__all__ = ["TagListError", "parse_tag_list"]

# FWS inside a tag value: WSP and folding CRLFs; both are insignificant at the ends.
_FWS_CHARS = " \t\r\n"


class TagListError(ValueError):
    """A tag list is malformed; callers turn it into their own error type."""


def parse_tag_list(text: str) -> dict[str, str]:
    """Parse ``tag=value; tag=value`` into a dict, keeping tag order.

    Whitespace around names and values is dropped; a trailing ``;`` is allowed.

    Raises:
        TagListError: a tag without ``=``, an invalid tag name, or a duplicate tag.
    """
    tags: dict[str, str] = {}
    parts = text.split(";")
    if parts and parts[-1].strip(_FWS_CHARS) == "":
        parts.pop()
    for part in parts:
        name, sep, value = part.partition("=")
        # tag-name = ALPHA *ALNUMPUNC (ALNUMPUNC = ALPHA / DIGIT / "_")
        name = name.strip(_FWS_CHARS)
        if not sep:
            raise TagListError(f"tag {name[:20]!r} has no '='")
        if not (name.isascii() and name[:1].isalpha() and name.replace("_", "a").isalnum()):
            raise TagListError(f"invalid tag name {name[:20]!r}")
        if name in tags:
            raise TagListError(f"duplicate tag {name!r}")
        tags[name] = value.strip(_FWS_CHARS)
    return tags
