"""sampan/units.py's size parsers: go-units' RAMInBytes and FromHumanSize."""

from __future__ import annotations

import pytest

from sampan.units import from_human_size, ram_in_bytes


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("1024", 1024), ("32", 32), ("32b", 32), ("32B", 32), ("32k", 32 << 10),
     ("32K", 32 << 10), ("32kb", 32 << 10), ("32Kb", 32 << 10), ("32KiB", 32 << 10),
     ("32Mb", 32 << 20), ("32Gb", 32 << 30), ("32Tb", 32 << 40), ("32Pb", 32 << 50),
     ("32PiB", 32 << 50), ("32 mb", 32 << 20), ("1.5g", 3 << 29), (".5k", 512), ("5.", 5),
     ("1 ", 1), ("0.3m", int(0.3 * (1 << 20)))],
)  # fmt: skip
def test_ram_in_bytes(text: str, size: int) -> None:
    assert ram_in_bytes(text) == size


@pytest.mark.parametrize(
    "text",
    ["", " ", "b", "k", "-1", "-32", "32.3.3", ".", "1..2k", "32x", "32 x", "32  m", "32m ",
     " 32", "32bb", "32kbb", "32ki", "32i", "32ib", "32KIBB", "1e3", "nan", "inf", "1 1"],
)  # fmt: skip
def test_ram_in_bytes_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=f"^invalid size: '{text}'$"):
        ram_in_bytes(text)


def test_from_human_size_is_decimal() -> None:
    assert [from_human_size(t) for t in ("32", "32b", "32k", "32KB", "32MiB", "1.5g", "2T")] == [
        32,
        32,
        32_000,
        32_000,
        32_000_000,
        1_500_000_000,
        2 * 10**12,
    ]
    with pytest.raises(ValueError, match="invalid size: '32q'"):
        from_human_size("32q")
