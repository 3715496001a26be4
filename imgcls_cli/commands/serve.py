"""`imgcls serve`: bind the port, load the model, warm it, then answer HTTP until
SIGTERM or Ctrl-C, which stop new connections, finish the requests in flight, and exit 0.
The app itself: serve/app.py."""

from __future__ import annotations

import dataclasses
import ipaddress
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli.config import ServeConfig
from imgcls_cli.errors import ImgclsError, UsageError
from imgcls_cli.rundir.load import LoadedRun
from imgcls_cli.serve.batcher import Batcher
from imgcls_cli.serve.metrics import Metrics

# What `imgcls serve` needs beyond imgcls' own packages: module → pip name.
SERVE_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "multipart": "python-multipart"}
GRACE_SECONDS = 30  # how long requests in flight may take after SIGTERM


def check_serve_extra() -> None:
    import importlib.util

    missing = [
        pip for module, pip in SERVE_MODULES.items() if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise UsageError(
            f"imgcls serve needs {', '.join(missing)}: pip install 'imgcls[serve]' "
            "(`make install` installs it)."
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the model loads: a port in use is said at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by every accepted connection: without it a kept-alive client waits 40 ms
    # for each answer (Nagle's algorithm against delayed ACKs), which uvicorn's own bind
    # avoids and a socket handed to it does not.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        reason = "is in use" if error.errno in (98, 48) else f"cannot be opened ({error.strerror})"
        raise ImgclsError(
            f"Port {port} on {host} {reason}; pass another --port (0 picks a free one)."
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def model_name(run: LoadedRun, config: ServeConfig) -> str:
    """TF Serving's model name: --name, else the run folder's name (an export folder's
    run, as `runs/x/export/onnx` → x-onnx)."""
    if config.name:
        return config.name
    folder = Path(run.run_dir).resolve()
    name = folder.name if run.exported is None else f"{folder.parent.parent.name}-{folder.name}"
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip("-.")
    return cleaned or "model"


def warm_up(run: LoadedRun, max_batch: int) -> Callable[[np.ndarray], np.ndarray]:
    """The batcher's model call, traced (Keras) or allocated (exports) before the first
    request, at a lone image and at a full batch."""

    def predict(images: np.ndarray) -> np.ndarray:
        return run.predict_batch(images, tta=False, compiled=True)

    for size in sorted({1, max_batch}):
        predict(np.zeros((size, *run.image_size, run.channels), np.float32))
    return predict


@dataclasses.dataclass
class Server:
    """A uvicorn server over one model, not yet started: `run` it (in the main thread it
    stops on SIGTERM or Ctrl-C), or set `uvicorn.should_exit`; then `close`."""

    uvicorn: Any
    sock: socket.socket
    name: str
    batcher: Batcher
    pool: ThreadPoolExecutor

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def run(self) -> None:
        self.uvicorn.run(sockets=[self.sock])

    def close(self) -> None:
        self.batcher.close()
        self.pool.shutdown(wait=True)
        self.sock.close()


def build_server(
    run: LoadedRun,
    sock: socket.socket,
    config: ServeConfig,
    api_key: str | None,
    log: Callable[[str], None],
) -> Server:
    """The model warmed, the batcher and decode threads started, the app assembled."""
    import uvicorn

    from imgcls_cli.serve.app import Served, UploadLimit, create_app

    name = model_name(run, config)
    predict = warm_up(run, config.max_batch)
    metrics = Metrics()
    batcher = Batcher(predict, config.max_batch, config.batch_timeout_ms / 1000, metrics.batch)
    pool = ThreadPoolExecutor(config.decode_threads, thread_name_prefix="imgcls-decode")
    served = Served(run, name, config, api_key, batcher, metrics, pool, log, ready=True)

    def refused(scope: dict) -> None:
        metrics.request("upload-limit", 413, 0.0)
        if not config.quiet:
            log(f"{scope['method']} {scope['path']} 413 (above --max-upload-mb)")

    app = UploadLimit(create_app(served), int(config.max_upload_mb * 2**20), refused)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=GRACE_SECONDS,
            lifespan="off",
        )
    )
    return Server(server, sock, name, batcher, pool)


def run_serve(
    run: LoadedRun,
    sock: socket.socket,
    config: ServeConfig,
    api_key: str | None,
    log: Callable[[str], None],
    info: Callable[[str], None],
) -> None:
    server = build_server(run, sock, config, api_key, log)
    info(f"Serving {server.name} ({run.run_dir}) at {server.url} — Ctrl-C to stop")
    # uvicorn stops on SIGTERM/SIGINT, lets requests in flight finish, then raises the
    # signal again under the handlers it found: these make that a clean exit 0.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
    info("Stopped: every request in flight was answered.")
