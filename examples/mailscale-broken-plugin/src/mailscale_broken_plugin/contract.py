"""Objects that import fine but do not satisfy the transport contract."""

from __future__ import annotations


def not_a_transport() -> None:
    """A function where a transport class belongs."""


class NoSend:
    """A class with schemes but no send()."""

    schemes = ("broken+nosend", "smtp")

    @classmethod
    def from_url(cls, url: object, **options: object) -> NoSend:
        return cls()

    def close(self) -> None:
        pass
