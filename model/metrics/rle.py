"""Validation of COCO run-length encodings, vectorised over many masks at once.

pycocotools decodes a compressed RLE string without checking it: a truncated or corrupt string, or
one written for another image size, silently gives a wrong mask (or reads past its buffer). Before
any IoU is computed, every compressed `counts` string is decoded here with numpy (the same
LEB128-like 6-bit format as pycocotools' `rleFrString`: 5 data bits per character offset by 48, bit
0x20 = more groups, bit 0x10 of the last group = sign, runs after the third stored as a difference
to the run two back) and must give non-negative runs summing to height × width.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_MAX_GROUPS = 12  # 12 × 5 bits = 60 bits: far above any real run length, still safe in int64


def compressed_counts_problems(counts: Sequence[str], totals: Sequence[int]) -> list[str | None]:
    """For each compressed counts string, None if it decodes to runs summing to `totals[i]`,
    else a short reason. Vectorised: one pass of numpy over all strings."""
    n = len(counts)
    problems: list[str | None] = [None] * n
    if n == 0:
        return problems
    totals_arr = np.asarray(totals, dtype=np.int64)
    strings = list(counts)
    for i, s in enumerate(strings):
        if not s:
            problems[i] = "is empty"
        elif not s.isascii():
            problems[i] = "contains a non-ASCII character"
    strings = ["" if problems[i] else s for i, s in enumerate(strings)]
    lens = np.fromiter((len(s) for s in strings), dtype=np.int64, count=n)
    nonempty = np.flatnonzero(lens)
    if nonempty.size == 0:
        return problems
    cum = np.cumsum(lens)
    str_start, last_char = cum[nonempty] - lens[nonempty], cum[nonempty] - 1
    c = np.frombuffer("".join(strings).encode("ascii"), dtype=np.uint8).astype(np.int16) - 48
    bad_char = (c < 0) | (c > 63)
    c[bad_char] = 0
    more = (c & 0x20) != 0
    truncated = np.zeros(n, dtype=bool)
    truncated[nonempty] = more[last_char] & ~bad_char[last_char]
    more[last_char] = False  # never let a number run on into the next string
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    k = np.arange(c.size) - np.repeat(starts, ends - starts + 1)
    too_long = k >= _MAX_GROUPS
    k = np.minimum(k, _MAX_GROUPS - 1)
    x = np.add.reduceat((c & 0x1F).astype(np.int64) << (5 * k), starts)
    negative = (c[ends] & 0x10) != 0
    x[negative] -= np.left_shift(np.int64(1), 5 * (k[ends][negative] + 1))

    num_owner = np.searchsorted(cum, starts, side="right")  # the string each number belongs to
    per_string = np.bincount(num_owner, minlength=n)
    first = np.cumsum(per_string) - per_string
    m = np.arange(x.size) - first[num_owner]
    # runs after the third are stored as a difference to the run two positions back: undo that with
    # a cumulative sum along each chain (odd runs from 1, even runs from 2), taken over all numbers
    # of the same global parity at once (int64 wrap-around cancels in the differences)
    csum = np.empty_like(x)
    csum[0::2], csum[1::2] = np.cumsum(x[0::2]), np.cumsum(x[1::2])
    chain_start = first[num_owner] + np.where(m % 2 == 1, 1, 2)
    chain_start = np.minimum(chain_start, x.size - 1)
    runs = np.where(m == 0, x, csum - csum[chain_start] + x[chain_start])

    num_first = first[nonempty]
    run_sum = np.zeros(n, dtype=np.int64)
    run_sum[nonempty] = np.add.reduceat(np.maximum(runs, 0), num_first)
    n_negative = np.zeros(n, dtype=np.int64)
    n_negative[nonempty] = np.add.reduceat((runs < 0).astype(np.int64), num_first)
    n_bad = np.zeros(n, dtype=np.int64)
    n_bad[nonempty] = np.add.reduceat(bad_char.astype(np.int64), str_start)
    n_long = np.zeros(n, dtype=np.int64)
    n_long[nonempty] = np.add.reduceat(too_long.astype(np.int64), str_start)
    for i in np.flatnonzero((n_bad > 0) | (n_long > 0) | truncated | (n_negative > 0)
                            | (run_sum != totals_arr)):
        if problems[i]:
            continue
        if n_bad[i]:
            problems[i] = "contains characters outside the RLE alphabet ('0' to 'o')"
        elif truncated[i]:
            problems[i] = "is truncated (its last character continues a number)"
        elif n_long[i]:
            problems[i] = "encodes an impossibly large run"
        elif n_negative[i]:
            problems[i] = "decodes to a negative run length"
        else:
            problems[i] = (f"decodes to {int(run_sum[i])} pixels, not height×width = "
                           f"{int(totals_arr[i])}")
    return problems


def uncompressed_counts_problem(counts: list, total: int) -> str | None:
    """None if a list of run lengths is valid for a mask of `total` pixels, else a short reason."""
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        return "must hold integers only"
    if any(c < 0 for c in counts):
        return "holds a negative run length"
    if sum(counts) != total:
        return f"sums to {sum(counts)} pixels, not height×width = {total}"
    return None
