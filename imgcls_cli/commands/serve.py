"""`imgcls serve`: bind the port, load the model, warm it, then answer HTTP until
SIGTERM or Ctrl-C, which stop new connections, finish the requests in flight, and exit 0.
The app itself: serve/app.py."""

from __future__ import annotations

import dataclasses
import ipaddress
import signal
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli import rundir
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
    except socket.gaierror as error:
        sock.close()
        raise ImgclsError(
            f"--host {host} is not an address of this machine ({error.strerror}); give one "
            "such as 127.0.0.1, or 0.0.0.0 for every network."
        ) from None
    except OSError as error:
        sock.close()
        if error.errno not in (98, 48):  # EADDRINUSE on Linux, macOS
            raise ImgclsError(
                f"Cannot listen on {host} port {port} ({error.strerror}); check --host and "
                "--port (0 picks a free port)."
            ) from None
        raise ImgclsError(
            f"Port {port} on {host} is in use; pass another --port (0 picks a free one)."
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def model_name(run_dir: Path, config: ServeConfig) -> str:
    """TF Serving's model name: --name, else the run folder's name (an export folder is
    named after its run and format: `runs/x/export/onnx` → x-onnx)."""
    if config.name:
        return config.name
    folder = Path(run_dir).resolve()
    exported = rundir.is_export_dir(folder)
    name = f"{folder.parent.parent.name}-{folder.name}" if exported else folder.name
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
    """A uvicorn server over one model, not yet started. `run(open_model)` answers at once
    (/health 200, /ready 503) while a thread loads and warms the model; in the main thread
    it stops on SIGTERM or Ctrl-C. A model that fails to load stops the server, and run
    raises its error. Then `close`."""

    uvicorn: Any
    sock: socket.socket
    served: Any  # serve.app.Served
    failure: BaseException | None = None

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def load(self, open_model: Callable[[], LoadedRun]) -> None:
        served = self.served
        try:
            run = open_model()
            predict = warm_up(run, served.config.max_batch)
        except BaseException as error:  # noqa: BLE001 - raised again by run, in its thread
            self.failure = error
            self.uvicorn.should_exit = True
            return
        if self.uvicorn.should_exit:  # stopped while it loaded: nothing to serve
            return
        config = served.config
        served.batcher = Batcher(
            predict, config.max_batch, config.batch_timeout_ms / 1000, served.metrics.batch
        )
        served.run, served.ready = run, True
        served.log(f"Model loaded and warmed: {served.name} is ready")

    def run(self, open_model: Callable[[], LoadedRun]) -> None:
        loader = threading.Thread(
            target=self.load, args=(open_model,), name="imgcls-load", daemon=True
        )
        loader.start()
        self.uvicorn.run(sockets=[self.sock])
        # Stopped while the model loads: TensorFlow cannot be left halfway through (a
        # process that ends while a thread loads it aborts: "terminate called…"), so the
        # load finishes first.
        loader.join()
        if self.failure is not None:
            raise self.failure

    def close(self) -> None:
        if self.served.batcher is not None:
            self.served.batcher.close()
        self.served.pool.shutdown(wait=True)
        self.sock.close()


def build_server(
    run_dir: Path,
    sock: socket.socket,
    config: ServeConfig,
    api_key: str | None,
    log: Callable[[str], None],
) -> Server:
    """The app assembled and the decode threads started; the model comes with run."""
    import uvicorn

    from imgcls_cli.serve.app import Served, UploadLimit, create_app

    metrics = Metrics()
    pool = ThreadPoolExecutor(config.decode_threads, thread_name_prefix="imgcls-decode")
    served = Served(None, model_name(run_dir, config), config, api_key, None, metrics, pool, log)

    def refused(scope: dict) -> None:
        metrics.request("upload-limit", 413, 0.0)
        if not config.quiet:
            log(f"{scope['method']} {scope['path']} 413 (above --max-upload-mb)")

    app = UploadLimit(create_app(served), config.max_upload_mb, refused)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=GRACE_SECONDS,
            lifespan="off",
        )
    )
    return Server(server, sock, served)


def run_serve(
    run_dir: Path,
    open_model: Callable[[], LoadedRun],
    sock: socket.socket,
    config: ServeConfig,
    api_key: str | None,
    log: Callable[[str], None],
    info: Callable[[str], None],
) -> None:
    server = build_server(run_dir, sock, config, api_key, log)

    # uvicorn stops on SIGTERM/SIGINT, lets requests in flight finish, then raises the
    # signal again under the handlers it found: these make that a clean exit 0. Set
    # before the first line, which tells a user (or a script) that it may stop the
    # server: a signal that comes before uvicorn has set its own stops it as it starts.
    def stop(*_: Any) -> None:
        server.uvicorn.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        info(
            f"Serving {server.served.name} ({run_dir}) at {server.url} (Ctrl-C to stop); "
            "/ready answers 200 once the model is loaded and warmed"
        )
        server.run(open_model)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
    if server.served.ready:
        info("Stopped: every request in flight was answered.")
    else:
        info("Stopped before the model was ready.")
