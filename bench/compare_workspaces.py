"""Golden comparison of two workspaces built by different code (``trust demo --workspace A`` before a change,
``B`` after): every map in the store and every number of every results folder must be bit-identical.

    python bench/compare_workspaces.py BEFORE AFTER

Compares, for each dataset's results folder: every value of ``summary.json`` and ``analysis.json`` (numbers
by their exact binary value, NaN equal to NaN; wall-clock seconds and the code-version fields left out),
every table (Parquet: same columns, same rows, same values), and every entry of the two stores (same keys;
each entry's arrays byte for byte; a stored map by the bits of its decoded forms, whichever form each
store keeps it in). Prints one line per difference and a ``RESULT`` line; exits 1 when
anything differs.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

# what differs between two runs of the same code: wall-clock times
VOLATILE = {"seconds", "elapsed_s", "started", "finished", "created", "timings"}


def _walk(a, b, path: str, out: list[str], roots: tuple[str, str] = ("", "")) -> int:
    """Compare two JSON values; append differences to ``out``; return the numbers compared. A path inside the
    first workspace equals the same path inside the second (``roots``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        n = 0
        for key in sorted(set(a) | set(b)):
            if key in VOLATILE:
                continue
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'after' if key not in a else 'before'}")
                continue
            n += _walk(a[key], b[key], f"{path}.{key}", out, roots)
        return n
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items before, {len(b)} after")
            return 0
        return sum(_walk(x, y, f"{path}[{k}]", out, roots) for k, (x, y) in enumerate(zip(a, b)))
    if isinstance(a, float) or isinstance(b, float):
        same = (isinstance(a, (int, float)) and isinstance(b, (int, float))
                and (a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))))
        if not same:
            out.append(f"{path}: {a!r} before, {b!r} after")
        return 1
    if isinstance(a, str) and roots[0]:
        a = a.replace(roots[0], roots[1])
    if a != b:
        out.append(f"{path}: {a!r} before, {b!r} after")
    return 1 if isinstance(a, (int, float)) else 0


def _tables(before: Path, after: Path, out: list[str]) -> int:
    import pandas as pd

    names = sorted({p.name for p in before.glob("*.parquet")} | {p.name for p in after.glob("*.parquet")})
    cells = 0
    for name in names:
        if not (before / name).is_file() or not (after / name).is_file():
            out.append(f"{before.name}/{name}: only in {'before' if (before / name).is_file() else 'after'}")
            continue
        a, b = pd.read_parquet(before / name), pd.read_parquet(after / name)
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            out.append(f"{before.name}/{name}: columns or rows differ ({a.shape} before, {b.shape} after)")
            continue
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        except AssertionError as error:
            out.append(f"{before.name}/{name}: {str(error).splitlines()[0]}")
        cells += a.size
    return cells


def _store(before: Path, after: Path, out: list[str]) -> int:
    import diskcache
    import numpy as np

    from trust_core.cache.codec import decode

    def same(x, y) -> bool:
        if isinstance(x, dict) and isinstance(y, dict) and "codec" in x and "codec" in y and x["codec"] != "raw":
            # a stored map: the same maps, bit for bit, whatever form each store keeps them in
            return all(same(p, q) for p, q in zip(decode(x), decode(y)))
        if isinstance(x, dict) and isinstance(y, dict):
            return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            return len(x) == len(y) and all(same(p, q) for p, q in zip(x, y))
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            return (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype
                    and x.shape == y.shape and x.tobytes() == y.tobytes())
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            return True
        return x == y

    with diskcache.Cache(str(before)) as a, diskcache.Cache(str(after)) as b:
        keys_a, keys_b = set(a.iterkeys()), set(b.iterkeys())
        for key in sorted(keys_a ^ keys_b, key=str)[:20]:
            out.append(f"store: key {key} only {'before' if key in keys_a else 'after'}")
        if keys_a ^ keys_b:
            out.append(f"store: {len(keys_a - keys_b)} keys only before, {len(keys_b - keys_a)} only after")
        compared = 0
        for key in sorted(keys_a & keys_b, key=str):
            if not same(a.get(key), b.get(key)):
                out.append(f"store: entry {key} differs")
            compared += 1
    return compared


def compare(before: str | Path, after: str | Path) -> tuple[list[str], dict]:
    before, after = Path(before), Path(after)
    out: list[str] = []
    counts = {"numbers": 0, "cells": 0, "maps": 0}
    for folder in sorted(p for p in (before / "results").iterdir() if p.is_dir()):
        other = after / "results" / folder.name
        for name in ("summary.json", "analysis.json"):
            if (folder / name).is_file():
                counts["numbers"] += _walk(json.loads((folder / name).read_text()),
                                           json.loads((other / name).read_text()), f"{folder.name}/{name}", out,
                                           (str(before), str(after)))
        counts["cells"] += _tables(folder, other, out)
    counts["maps"] = _store(before / "store", after / "store", out)
    return out, counts


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    differences, counts = compare(*argv[:2])
    for line in differences[:200]:
        print(line)
    print(f"RESULT numbers={counts['numbers']} table_cells={counts['cells']} store_entries={counts['maps']} "
          f"differences={len(differences)}")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
