"""DKIM tag=value lists (RFC 6376 section 3.2) given as text, as key records are.

The rules have one home, the hot path's ``parse_tags``: DKIM-Signature fields
are parsed from bytes inside the core (``parse_signature``) by the same rules.
"""

from __future__ import annotations

from mailscale._hot import parse_tags

__all__ = ["TagListError", "parse_tag_list"]


class TagListError(ValueError):
    """A tag list is malformed; callers turn it into their own error type."""


def parse_tag_list(text: str) -> dict[str, str]:
    """Parse ``tag=value; tag=value`` into a dict, keeping tag order.

    Whitespace around names and values is dropped; a trailing ``;`` is allowed.

    Raises:
        TagListError: a tag without ``=``, an invalid tag name, or a duplicate tag.
    """
    try:
        return parse_tags(text)
    except ValueError as exc:
        raise TagListError(str(exc)) from None
