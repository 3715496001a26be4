"""`make bench`: run every benchmarks/bench_*.py, then merge their results into
benchmarks/results.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n=== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE).returncode != 0:
            failed.append(script.name)
    merged = {
        path.stem: json.loads(path.read_text())
        for path in sorted((HERE / "results").glob("*.json"))
    }
    (HERE / "results.json").write_text(json.dumps(merged, indent=2) + "\n")
    print(f"\nWrote {HERE / 'results.json'}")
    if failed:
        print(f"Failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
