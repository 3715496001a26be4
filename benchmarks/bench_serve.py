"""How does `imgcls serve` hold up under load, against the servers users write by hand?

Three servers of the same model on this machine, one after another, each answering the
same PNG uploaded as a multipart `file` field:

- tutorial: FastAPI, the upload decoded with PIL, `model.predict` on every request (what
  most tutorials show);
- better: the same, but one `model(x, training=False)` call per request (no Keras
  predict loop);
- imgcls: `imgcls serve RUN --quiet` (batched model calls, decoding in threads).

Each is measured at concurrency 1 and at --concurrency (32): requests/s, p50, p99 and
errors, from persistent connections on client threads in this process. imgcls' RSS is
read after --warm-requests (1,000), after --requests (5,000) more, and after --long
(14,000) more still: after 20,000 in all. The client
shares the machine's cores with the server: on 2 cores the figures are lower than on a
larger machine, alike for all three. Models: a digit CNN (simplecnn, 8x8) and MobileNetV2
at 224x224 (random weights: only speed is measured). Prints a table and writes
benchmarks/results/serve.json.

    flock /tmp/imgcls-tf.lock .venv/bin/python benchmarks/bench_serve.py
    .venv/bin/python benchmarks/bench_serve.py --dry-run   # tiny, to see it run
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from common import print_table, save

HAND_WRITTEN = """\
import io, sys
import keras, numpy as np
from fastapi import FastAPI, UploadFile
from PIL import Image

model = keras.saving.load_model(sys.argv[1])
height, width, channels = model.inputs[0].shape[1:]
labels = [str(i) for i in range(model.outputs[0].shape[-1])]
app = FastAPI()

@app.post("/predict")
async def predict(file: UploadFile):
    image = Image.open(io.BytesIO(await file.read())).convert("L" if channels == 1 else "RGB")
    x = np.asarray(image.resize((width, height)), np.float32).reshape(1, height, width, channels)
    probabilities = {call}[0]
    best = int(np.argmax(probabilities))
    return {{"label": labels[best], "confidence": float(probabilities[best])}}

if __name__ == "__main__":
    import uvicorn
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""
CALLS = {
    "tutorial": "model.predict(x, verbose=0)",
    "better": "model(x, training=False).numpy()",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port: int, process: subprocess.Popen, path: str | None, timeout: float = 180):
    """Until the server accepts connections and, where it has a readiness path (imgcls
    answers at once and loads the model behind /ready), that path answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server stopped"
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path or "/")
            status = connection.getresponse().status
            connection.close()
            if path is None or status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the server did not start")


def multipart(content: bytes) -> tuple[bytes, dict]:
    boundary = "bench-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def load(port: int, body: bytes, headers: dict, requests: int, concurrency: int) -> dict:
    """requests/s, latency percentiles (ms) and errors at `concurrency` clients."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            started = time.perf_counter()
            try:
                connection.request("POST", "/predict", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                errors[0] += not ok
        connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    seconds = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "requests_per_second": len(latencies) / seconds,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": errors[0],
    }


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024


def start(kind: str, run_dir: Path, port: int, scratch: Path) -> subprocess.Popen:
    if kind == "imgcls":
        command = [sys.executable, "-m", "imgcls_cli", "serve", str(run_dir)]
        command += ["--port", str(port), "--quiet"]
    else:
        script = scratch / f"{kind}.py"
        script.write_text(HAND_WRITTEN.format(call=CALLS[kind]))
        command = [sys.executable, str(script), str(run_dir / "model.keras"), str(port)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def make_runs(scratch: Path, dry_run: bool) -> dict[str, tuple[Path, bytes]]:
    """{model name: (run directory, a PNG at its input size)}."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import make_class_folder
    from PIL import Image

    from imgcls_cli import api

    digits = api.train(dataset="digits", arch="simplecnn", epochs=1, output=scratch / "digits").path
    folder = make_class_folder(scratch / "photos", classes=("a", "b"), per_class=4, size=32)
    size = 32 if dry_run else 224
    mobilenet = api.finetune(
        data=str(folder),
        backbone="mobilenetv2",
        weights="none",
        image_size=size,
        head_epochs=1,
        epochs=0,
        output=scratch / "mobilenetv2",
    ).path
    rng = np.random.default_rng(0)
    images = {}
    for name, shape in (("digits", (8, 8)), ("mobilenetv2", (size, size, 3))):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(buffer, "PNG")
        images[name] = buffer.getvalue()
    return {
        "digits-simplecnn": (digits, images["digits"]),
        "mobilenetv2-224": (mobilenet, images["mobilenetv2"]),
    }


SERVERS = ("tutorial", "better", "imgcls")


def comparison(kinds: dict, args: argparse.Namespace) -> str:
    """imgcls against the hand-written servers that ran, then its RSS and errors."""
    imgcls = kinds["imgcls"]
    speed = imgcls["concurrent"]["requests_per_second"]
    parts = [
        f"{kind} {speed / kinds[kind]['concurrent']['requests_per_second']:.2f}x"
        for kind in ("tutorial", "better")
        if kind in kinds
    ]
    text = f"{', '.join(parts)} at c={args.concurrency}; " if parts else ""
    if "better" in kinds:
        lone = imgcls["single"]["p50_ms"] / kinds["better"]["single"]["p50_ms"]
        text += f"lone p50 {lone:.2f}x better's; "
    before = imgcls["rss_mb_after_warm"]
    after = imgcls.get("rss_mb_after_long", imgcls["rss_mb_after_all"])
    served = args.warm_requests + args.requests + (args.long or 0)
    errors = imgcls["concurrent"]["errors"] + imgcls.get("long", {}).get("errors", 0)
    return (
        f"{text}RSS {before:.0f} MB after {args.warm_requests:,} requests, {after:.0f} MB "
        f"after {served:,} ({errors} errors)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warm-requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--long",
        type=int,
        default=14000,
        help="more requests to imgcls after the measured ones, then its RSS again "
        "(1,000 + 5,000 + 14,000: RSS after 20,000 against after 1,000)",
    )
    parser.add_argument("--models", default="digits-simplecnn,mobilenetv2-224")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="which servers to run (imgcls alone: its error count and RSS at the full "
        "counts, where the hand-written servers would take half an hour)",
    )
    parser.add_argument("--dry-run", action="store_true", help="tiny, to see it run")
    args = parser.parse_args()
    if args.dry_run:
        args.requests, args.warm_requests, args.concurrency, args.long = 40, 20, 8, 40
    servers = args.servers.split(",")
    unknown = sorted(set(servers) - set(SERVERS))
    if unknown:
        parser.error(f"unknown servers {unknown}; choose from {', '.join(SERVERS)}")
    results: dict = {}
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        runs = make_runs(scratch, args.dry_run)
        for model in args.models.split(","):
            run_dir, image = runs[model]
            body, headers = multipart(image)
            for kind in (kind for kind in SERVERS if kind in servers):
                port = free_port()
                process = start(kind, run_dir, port, scratch)
                try:
                    wait_ready(port, process, "/ready" if kind == "imgcls" else None)
                    load(port, body, headers, 50, 4)  # warm up every path
                    figures = {"single": load(port, body, headers, args.requests // 10, 1)}
                    if kind == "imgcls":
                        load(port, body, headers, args.warm_requests, args.concurrency)
                        figures["rss_mb_after_warm"] = rss_mb(process.pid)
                    figures["concurrent"] = load(
                        port, body, headers, args.requests, args.concurrency
                    )
                    if kind == "imgcls":
                        figures["rss_mb_after_all"] = rss_mb(process.pid)
                        if args.long:
                            figures["long"] = load(port, body, headers, args.long, args.concurrency)
                            figures["rss_mb_after_long"] = rss_mb(process.pid)
                finally:
                    process.terminate()
                    process.wait(60)
                results.setdefault(model, {})[kind] = figures
    rows = []
    for model, kinds in results.items():
        for kind, figures in kinds.items():
            one, many = figures["single"], figures["concurrent"]
            rows.append(
                (
                    f"{model} {kind}",
                    f"c=1 p50 {one['p50_ms']:.1f} ms; c={args.concurrency} "
                    f"{many['requests_per_second']:,.0f} req/s, p50 {many['p50_ms']:.1f} ms, "
                    f"p99 {many['p99_ms']:.1f} ms, errors {one['errors'] + many['errors']}",
                )
            )
        if "imgcls" in kinds:
            rows.append((f"{model} imgcls vs", comparison(kinds, args)))
    print_table(f"imgcls serve under load ({os.cpu_count()} CPU cores, client included)", rows)
    document = {"dry_run": args.dry_run, "concurrency": args.concurrency, "results": results}
    if not args.dry_run:  # a run of some servers only does not replace the whole one's file
        save("serve" if servers == list(SERVERS) else "serve-" + "-".join(servers), document)
    print(json.dumps(document))


if __name__ == "__main__":
    main()
