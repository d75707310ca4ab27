"""How ringserve's logits are held to a tolerance: per row, the largest |a - b| over the
largest |b| (max |diff| / max |logit|), the definition of docs/design.md and of the unit
tests' LogitsError (tests/unit/model/test_devices.cc). vectors_check.py and hf_compare.py
gate on it; the L2 ratio ||a - b|| / ||b|| goes beside it for information only.
"""

import math

METRIC = "max |a - b| / max |b| per row"


def max_rel_err(a, b):
    """max |a_i - b_i| / max |b_i|; inf for rows of different lengths, an all-zero b or a NaN."""
    if len(a) != len(b):
        return math.inf
    max_b = max((abs(y) for y in b), default=0.0)
    max_diff = 0.0
    for x, y in zip(a, b):
        diff = abs(x - y)
        if math.isnan(diff):
            return math.inf
        max_diff = max(max_diff, diff)
    return max_diff / max_b if max_b > 0 else math.inf


def l2_rel_err(a, b):
    """||a - b|| / ||b||; inf for rows of different lengths, an all-zero b or a NaN."""
    if len(a) != len(b):
        return math.inf
    num = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    den = math.sqrt(sum(y * y for y in b))
    if den == 0 or math.isnan(num):
        return math.inf
    return num / den


def worst(rows_a, rows_b, err):
    """The largest err over paired rows; inf when the row counts differ (or there are none)."""
    if len(rows_a) != len(rows_b) or not rows_b:
        return math.inf
    return max(err(a, b) for a, b in zip(rows_a, rows_b))


def compare_rows(rows_a, rows_b, limit=None):
    """The worst row of rows_a against rows_b by both measures; with a limit, ok when the
    documented one (max_rel_err) is within it."""
    result = {"max_rel_err": worst(rows_a, rows_b, max_rel_err),
              "l2_rel_err": worst(rows_a, rows_b, l2_rel_err), "metric": METRIC}
    if limit is not None:
        result.update(limit=limit, ok=result["max_rel_err"] <= limit)
    return result
