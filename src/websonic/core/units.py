"""Formatting quantities for people."""

from __future__ import annotations


def human_size(size: int | None) -> str:
    """1536 -> '1.5 KiB'; None -> ''."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
