"""`make bench`: run every benchmarks/bench_*.py, then merge their results into
benchmarks/results.json.

    python benchmarks/run_all.py [bench_memory bench_finetune ...]   # only these scripts
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from summary import markdown_table

HERE = Path(__file__).parent


def main() -> int:
    failed = []
    scripts = sorted(HERE.glob("bench_*.py"))
    if len(sys.argv) > 1:
        scripts = [HERE / f"{name.removesuffix('.py')}.py" for name in sys.argv[1:]]
    for script in scripts:
        print(f"\n=== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE).returncode != 0:
            failed.append(script.name)
    merged = {
        path.stem: json.loads(path.read_text())
        for path in sorted((HERE / "results").glob("*.json"))
    }
    (HERE / "results.json").write_text(json.dumps(merged, indent=2) + "\n")
    print(f"\nWrote {HERE / 'results.json'}\n")
    print(markdown_table(merged))
    if failed:
        print(f"Failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
