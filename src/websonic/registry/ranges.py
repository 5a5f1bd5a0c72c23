"""HTTP ``Range`` for blobs (RFC 9110 §14), pure.

Policy: one ``bytes=`` range is honoured (206); a satisfiable-looking range starting at or past
the end is 416; anything malformed, another unit, or several ranges is ignored (the whole blob,
200), as RFC 9110 §14.2 allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SINGLE = re.compile(r"^bytes=(\d*)-(\d*)$")


class Unsatisfiable(Exception):
    """No byte of the requested range exists: 416 with ``Content-Range: bytes */size``."""


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range to serve, or None for the whole blob; raises :class:`Unsatisfiable`."""
    if header is None:
        return None
    match = SINGLE.match(header.strip().replace(" ", ""))
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # suffix: the last N bytes
        if int(last) == 0 or size == 0:
            raise Unsatisfiable()
        return ByteRange(max(size - int(last), 0), size - 1)
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None  # invalid (last < first): ignored
    if start >= size:
        raise Unsatisfiable()
    return ByteRange(start, end)
