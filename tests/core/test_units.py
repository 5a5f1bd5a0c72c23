from __future__ import annotations

from websonic.core.units import human_size


def test_human_size() -> None:
    assert human_size(None) == ""
    assert human_size(512) == "512 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(70 * 2**20) == "70.0 MiB"
    assert human_size(3 * 2**40) == "3072.0 GiB"
