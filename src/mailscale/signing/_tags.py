"""DKIM tag=value lists (RFC 6376 section 3.2), shared by signatures and key records."""

from __future__ import annotations

from mailscale._dkim_py import parse_tags

__all__ = ["TagListError", "parse_tag_list"]


class TagListError(ValueError):
    """A tag list is malformed; callers turn it into their own error type."""


def parse_tag_list(text: str) -> dict[str, str]:
    """Parse ``tag=value; tag=value`` into a dict, keeping tag order.

    Whitespace around names and values is dropped; a trailing ``;`` is allowed.
    Signatures are parsed from bytes by ``core.parse_tag_list``, the same rules.

    Raises:
        TagListError: a tag without ``=``, an invalid tag name, or a duplicate tag.
    """
    try:
        return parse_tags(text)
    except ValueError as exc:
        raise TagListError(str(exc)) from None
