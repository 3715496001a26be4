"""Memory of many trainings in one Python process, as a notebook or a sweep script runs
them: RSS after each `api.train` (simplecnn, 1 epoch on the embedded digits). The aim:
the last run's RSS within 10% of the first's; the anchor is the same loop with
keras.backend.clear_session() after each run, which is what a user would try.

    python benchmarks/bench_api_memory.py [--runs 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from common import print_table, save

LOOP = """
import gc, json, sys, tempfile
from imgcls_cli import api

runs, clear = int(sys.argv[1]), sys.argv[2] == "clear"

def rss_mib():
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    import os
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20

sizes = []
with tempfile.TemporaryDirectory() as root:
    for index in range(runs):
        api.train(dataset="digits", arch="simplecnn", epochs=1, output=f"{root}/r{index}")
        if clear:
            import keras
            keras.backend.clear_session()
        gc.collect()
        sizes.append(rss_mib())
print(json.dumps(sizes))
"""


def loop(runs: int, clear: bool) -> list[float]:
    done = subprocess.run(
        [sys.executable, "-c", LOOP, str(runs), "clear" if clear else "plain"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    figures = {}
    rows = []
    for name, clear in (("api.train", False), ("api.train + clear_session", True)):
        sizes = loop(args.runs, clear)
        growth = sizes[-1] / sizes[0] - 1
        figures[name] = {"rss_mib": sizes, "growth": growth}
        rows.append(
            (
                name,
                f"RSS {sizes[0]:.0f} MiB after run 1, {sizes[-1]:.0f} MiB after run "
                f"{len(sizes)}: {growth:+.1%}",
            )
        )
    print_table(f"Memory over {args.runs} trainings in one process", rows)
    save("api_memory", figures)


if __name__ == "__main__":
    main()
