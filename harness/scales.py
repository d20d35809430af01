"""The run scales (a profile's ``scale:``) and their order by strength — the one home of both.

A profile's scale (``harness/profiles/*.yaml``) says how far its runs are from the published protocol:

* ``smoke``: a few steps on a tiny slice, a plumbing check, never evidence;
* ``custom``: a user's own profile, treated as a reduced scale below ``cpu``;
* ``cpu``, ``gpu-quick``: reduced protocols (trends only);
* ``paper``: the full published protocol.

Reports order scales weakest first and rate a mix of scales by its weakest run.
"""

from __future__ import annotations

from typing import Iterable, Tuple

#: every valid scale, weakest first
SCALES: Tuple[str, ...] = ("smoke", "custom", "cpu", "gpu-quick", "paper")
#: the weakest scale: what an unknown or missing scale counts as in reports
WEAKEST = SCALES[0]


def strength(scale: str) -> int:
    """Position of ``scale`` in ``SCALES`` (0 = weakest); -1 for an unknown name (sorts before every scale)."""
    return SCALES.index(scale) if scale in SCALES else -1


def weakest(scales: Iterable[str]) -> str:
    """The weakest of ``scales`` (an unknown name counts as the weakest scale); ValueError if empty."""
    names = list(scales)
    if not names:
        raise ValueError("weakest() of no scales")
    if any(s not in SCALES for s in names):
        return WEAKEST
    return min(names, key=SCALES.index)
