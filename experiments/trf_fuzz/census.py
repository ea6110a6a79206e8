"""Census of the graph TRF engine against the gradient oracle, per op family.

For each family, ``N`` random graphs (tests/rf/trf_fuzz.py: a chain of plain conv/pool/tanh
steps with at least one op of the family; "a+b" also lets the ops of family b surround it)
are drawn deterministically and each is classified as exact (every probed unit's box equals
the oracle's), refused (a one-line TypeError/ValueError naming the op) or wrong.

    python experiments/trf_fuzz/census.py N OUT.json [family ...]

prints one line per family and writes the counts and the first non-exact example of each.
Run it from the repository root (it imports tests/rf/trf_fuzz.py).
"""

from __future__ import annotations

import collections
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from rf.trf_fuzz import FAMILIES, check_net, fuzz_nets  # noqa: E402

MIXED = [
    "merge_add_mul+pad_constant",
    "cat_channels+pad_constant",
    "tokens+resize_nearest",
    "cat_spatial+resize_nearest",
]


def census(n: int, family: str) -> dict:
    counts: collections.Counter = collections.Counter()
    first: dict[str, tuple[str, str]] = {}
    required, *extra = family.split("+")
    strategy = fuzz_nets(("plain", *extra), required=required, max_steps=3)

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(net=strategy)
    def run(net):
        verdict = check_net(net)
        counts[verdict.status] += 1
        if verdict.status != "exact":
            first.setdefault(verdict.status, (net.describe(), verdict.detail))

    run()
    return {"counts": dict(counts), "first": first}


def main(argv: list[str]) -> None:
    n, out = int(argv[0]), Path(argv[1])
    families = argv[2:] or [*FAMILIES, *MIXED]
    results = {}
    for family in families:
        start = time.time()
        results[family] = census(n, family)
        c = collections.Counter(results[family]["counts"])
        print(
            f"{family:28s} exact {c['exact']:4d} refused {c['refused']:4d} wrong {c['wrong']:4d} "
            f"({time.time() - start:.0f} s)",
            flush=True,
        )
        out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
