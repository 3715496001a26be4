"""The HTTP app of `imgcls serve` (FastAPI on Starlette): the page, imgcls' own endpoints
and TF Serving's REST API, over one loaded run or export.

FastAPI is imported at module level (it reads the handlers' annotations): this module
is imported only once the serve extra is known to be installed.

Every upload is decoded as `imgcls predict` decodes a file (it is written to a private
scratch file and read by data.folder's decoder: the same pixels, the same resize), in a
thread pool; the model runs on the batcher's thread, never on the event loop. A bad
upload is that upload's error, never a 500, and the process outlives every request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hmac
import io
import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from imgcls_cli.commands.predict import Prediction, read_for_model, top_classes
from imgcls_cli.config import ServeConfig
from imgcls_cli.rundir.load import LoadedRun
from imgcls_cli.serve.batcher import Batcher
from imgcls_cli.serve.metrics import Metrics

# Answered without the API key: liveness for orchestrators, and the page, which holds no
# model data (it asks for the key, then fetches everything with it).
OPEN_PATHS = frozenset({"/health", "/", "/favicon.ico"})
# The status of a /predict answer: every upload classified; some; none.
ALL_READ, SOME_READ, NONE_READ = 200, 207, 422


@dataclasses.dataclass
class Served:
    """What every request works with. The run and the batcher arrive once the model is
    loaded and warmed (commands.serve.Server.load); until then `ready` is False."""

    run: LoadedRun | None
    name: str
    config: ServeConfig
    api_key: str | None
    batcher: Batcher | None
    metrics: Metrics
    pool: ThreadPoolExecutor
    log: Callable[[str], None]
    ready: bool = False
    cam: Any = None  # report.gradcam.GradCam, made on the model's thread when first asked


class RequestProblem(Exception):
    """A request imgcls cannot answer as sent: its status and one line saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def loaded(served: Served) -> LoadedRun:
    """The run, once the model is ready; until then 503."""
    if not served.ready or served.run is None:
        raise RequestProblem(503, "The model is still loading; try again when /ready answers 200.")
    return served.run


# --- Decoding --------------------------------------------------------------------------


def scratch_name(name: str) -> str:
    """A safe file name for an upload's scratch copy, keeping its extension."""
    base = Path(name.replace("\\", "/")).name
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[-100:]
    return cleaned or "upload"


@contextlib.contextmanager
def scratch_file(name: str, content: bytes) -> Iterator[Path]:
    """An upload as a private file, read by the decoders `predict` and `explain` use (the
    same pixels), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="imgcls-serve-") as scratch:
        path = Path(scratch) / scratch_name(name)
        path.write_bytes(content)
        yield path


def pixel_limit_error(content: bytes, limit: float) -> str | None:
    """Why an image is too large to decode here, read from its header alone."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(content)) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - not an image: the decoder says why
        return None
    if width * height > limit * 1e6:
        return (
            f"image of {width}x{height} pixels is above this server's limit of {limit:g} "
            "megapixels (--max-megapixels): downscale it"
        )
    return None


def decode_upload(served: Served, name: str, content: bytes) -> np.ndarray | str:
    """The model's input for one upload, or why it cannot be read."""
    from imgcls_cli.data.images import unreadable_reason

    too_large = pixel_limit_error(content, served.config.max_megapixels)
    if too_large:
        return too_large
    with scratch_file(name, content) as path:
        try:
            return read_for_model(str(path), served.run)
        except Exception as error:  # PIL and TensorFlow raise many types for bad files
            return unreadable_reason(path, error)


def decode_and_submit(served: Served, name: str, content: bytes) -> Future | str:
    """Decode (in the pool's thread), then queue for the model; the batcher learns that
    this image has arrived either way."""
    try:
        decoded = decode_upload(served, name, content)
        if isinstance(decoded, str):
            return decoded
        return served.batcher.submit(decoded)
    finally:
        served.batcher.arrived()


async def classify(served: Served, uploads: list[tuple[str, bytes]]) -> list[Any]:
    """For each upload, (probabilities, batch size) or the reason it could not be read."""
    loop = asyncio.get_running_loop()
    served.batcher.expect(len(uploads))
    queued = await asyncio.gather(
        *(
            loop.run_in_executor(served.pool, decode_and_submit, served, name, content)
            for name, content in uploads
        )
    )
    return [item if isinstance(item, str) else await asyncio.wrap_future(item) for item in queued]


# --- Reading requests ------------------------------------------------------------------


async def read_uploads(request: Any) -> list[tuple[str, bytes]]:
    """The images of a /predict or /explain request: its multipart `file` fields, or the
    whole body as one image (named by ?filename=)."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        form = await request.form()
        uploads = []
        for field in form.getlist("file"):
            if isinstance(field, str):
                raise RequestProblem(400, "The `file` fields must be files, not text.")
            uploads.append((field.filename or "upload", await field.read()))
        if not uploads:
            raise RequestProblem(
                400, "No `file` field in the form: send each image as a multipart `file` field."
            )
        return uploads
    body = await request.body()
    if not body:
        raise RequestProblem(
            400, "No image: send images as multipart `file` fields, or one image as the body."
        )
    return [(request.query_params.get("filename") or "upload", body)]


def query_top_k(request: Any, served: Served) -> int:
    value = request.query_params.get("top_k")
    if value is None:
        return min(served.config.top_k, served.run.num_classes)
    if not value.isdigit() or int(value) < 1:
        raise RequestProblem(400, f"top_k must be a whole number of at least 1; got {value!r}.")
    return min(int(value), served.run.num_classes)


def expected_shape(run: LoadedRun) -> str:
    height, width = run.image_size
    lists = f"[{height}][{width}][{run.channels}]"
    if run.channels == 1:  # a grayscale image may leave out its one channel
        lists += f" or [{height}][{width}]"
    return (
        f"{height}x{width}x{run.channels} pixels, 0-255 ({lists} nested lists), or "
        '{"b64": "<base64 of an image file>"}'
    )


def holds_boolean(item: Any) -> bool:
    return isinstance(item, bool) or (isinstance(item, list) and any(map(holds_boolean, item)))


def instance_pixels(
    item: Any, position: int, run: LoadedRun, may_hold_booleans: bool = True
) -> np.ndarray | bytes:
    """One TF Serving instance: raw pixels at the model's input size as float32, or the
    bytes of an encoded image ({"b64": ...}). `may_hold_booleans`: False when the body
    has no `true` or `false`, which spares the walk that refuses them (numpy would read
    them as 1 and 0)."""
    if isinstance(item, dict) and set(item) == {"images"}:
        item = item["images"]  # the named-input form: {"images": ...}
    if isinstance(item, dict):
        if set(item) != {"b64"} or not isinstance(item["b64"], str):
            raise RequestProblem(400, f"instance {position}: expected {expected_shape(run)}.")
        try:
            return base64.b64decode(item["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise RequestProblem(400, f"instance {position}: b64 is not valid base64.") from None
    if may_hold_booleans and holds_boolean(item):
        raise RequestProblem(
            400, f"instance {position}: pixel values must be numbers in 0-255, not true or false."
        )
    try:
        pixels = np.asarray(item, dtype=np.float32)
    except (TypeError, ValueError):
        raise RequestProblem(400, f"instance {position}: expected {expected_shape(run)}.") from None
    if pixels.ndim == 2 and run.channels == 1:
        pixels = pixels[..., None]
    if pixels.shape != (*run.image_size, run.channels):
        raise RequestProblem(
            400,
            f"instance {position} has shape {list(pixels.shape)}; expected {expected_shape(run)}.",
        )
    if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 255:
        raise RequestProblem(400, f"instance {position}: pixel values must lie in 0-255.")
    return pixels


# --- The app ---------------------------------------------------------------------------


class UploadLimit:
    """ASGI middleware: a body above `limit` bytes is answered 413 before it is read whole
    (at once from its Content-Length; a body sent without one, as soon as it passes the
    limit). `refused(scope)` counts and logs it."""

    def __init__(self, app: Any, megabytes: float, refused: Callable[[dict], None]) -> None:
        self.app, self.megabytes, self.refused = app, megabytes, refused
        self.limit = int(megabytes * 2**20)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > self.limit:
                return await self.refuse(scope, send)
            return await self.app(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client left
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self.refuse(scope, send)
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    async def refuse(self, scope: dict, send: Callable) -> None:
        body = json.dumps(
            {
                "error": f"The request body is above this server's limit of {self.megabytes:g} MB "
                "(--max-upload-mb); send fewer or smaller images."
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.refused(scope)


class GuardAndLog:
    """ASGI middleware around every endpoint: the API key, a JSON 500 for anything an
    endpoint did not expect (the process outlives it), the metrics and one log line per
    request. Plain ASGI: Starlette's BaseHTTPMiddleware would cost each request a stream
    and a task."""

    def __init__(self, app: Any, served: Served) -> None:
        self.app, self.served = app, served

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, served = time.perf_counter(), self.served
        scope.setdefault("state", {})["batch"] = None  # endpoints set request.state.batch
        status = [0]

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        refused = self.refused(scope)
        try:
            if refused is not None:
                await refused(scope, receive, sending)
            else:
                await self.app(scope, receive, sending)
        except Exception as error:  # noqa: BLE001 - the server outlives every request
            if not status[0]:
                message = f"Internal error: {type(error).__name__}: {error}"
                await JSONResponse({"error": message}, status_code=500)(scope, receive, sending)
        seconds = time.perf_counter() - started
        endpoint = getattr(scope.get("route"), "path", "other")
        served.metrics.request(endpoint, status[0], seconds)
        if not served.config.quiet:
            batch = scope["state"].get("batch")
            served.log(
                f"{scope['method']} {scope['path']} {status[0]} {seconds * 1000:.1f} ms"
                + (f" batch {batch}" if batch else "")
            )

    def refused(self, scope: dict) -> JSONResponse | None:
        """401 unless the request carries the API key (where one is needed)."""
        key = self.served.api_key
        if key is None or scope["path"] in OPEN_PATHS:
            return None
        given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), key.encode()):
            return None
        said = "The API key is wrong" if token else "This server needs an API key"
        response = JSONResponse(
            {"error": f"{said}: send it as `Authorization: Bearer KEY`."}, status_code=401
        )
        response.headers["WWW-Authenticate"] = "Bearer"
        return response


def create_app(served: Served) -> FastAPI:
    app = FastAPI(title="imgcls serve", docs_url=None, redoc_url=None, openapi_url=None)

    def problem(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    app.add_middleware(GuardAndLog, served=served)

    @app.exception_handler(RequestProblem)
    async def request_problem(request: Request, error: RequestProblem) -> JSONResponse:
        return problem(error.status, str(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, error: StarletteHTTPException) -> JSONResponse:
        """Unknown paths (404), methods (405) and bodies Starlette cannot parse (400)
        answer in the same {"error": ...} shape, naming the request."""
        detail = str(error.detail).rstrip(".")
        return problem(error.status_code, f"{detail} ({request.method} {request.url.path})")

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        text = resources.files("imgcls_cli.serve").joinpath("page.html").read_text("utf-8")
        return HTMLResponse(text)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        return JSONResponse({"ready": served.ready}, status_code=200 if served.ready else 503)

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(served.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/model")
    async def model_info() -> dict:
        run = loaded(served)
        return {
            "name": served.name,
            "classes": run.class_names,
            "image_size": list(run.image_size),
            "channels": run.channels,
            "format": "keras" if run.exported is None else run.exported.format.value,
            "explain": run.model is not None,
            "top_k": min(served.config.top_k, run.num_classes),
        }

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        run = loaded(served)
        k = query_top_k(request, served)
        uploads = await read_uploads(request)
        records, sizes = [], []
        for (name, _), outcome in zip(uploads, await classify(served, uploads)):
            if isinstance(outcome, str):
                records.append(Prediction(name, error=outcome).to_dict())
                continue
            probabilities, size = outcome
            sizes.append(size)
            [classes] = top_classes(probabilities[None], run.class_names, k)
            records.append(Prediction(name, classes).to_dict())
        request.state.batch = max(sizes, default=None)
        read = len(sizes)
        status = ALL_READ if read == len(records) else SOME_READ if read else NONE_READ
        return JSONResponse(records, status_code=status)

    @app.post("/explain")
    async def explain(request: Request) -> Response:
        run = loaded(served)
        if run.model is None:
            raise RequestProblem(
                501, "Grad-CAM needs the Keras model: serve the run directory, not an export."
            )
        wanted = request.query_params.get("format", "png")
        if wanted not in ("png", "json"):
            raise RequestProblem(400, f"format must be png or json; got {wanted!r}.")
        uploads = await read_uploads(request)
        if len(uploads) != 1:
            raise RequestProblem(400, f"Send one image to /explain; got {len(uploads)}.")
        name, content = uploads[0]
        wanted_class = request.query_params.get("class")
        if wanted_class is not None and wanted_class not in run.class_names:
            raise RequestProblem(
                400, f"Unknown class {wanted_class!r}; the classes: {', '.join(run.class_names)}."
            )
        future = served.batcher.call(lambda: explain_upload(served, name, content, wanted_class))
        item, png = await asyncio.wrap_future(future)
        if item.error is not None:
            return problem(422, f"{item.path}: {item.error}")
        if wanted == "json":
            return JSONResponse({k: v for k, v in item.to_dict().items() if k != "file"})
        return Response(png, media_type="image/png")

    def tf_serving_model(name: str) -> None:
        if name != served.name:
            raise RequestProblem(404, f"Servable not found for request: Latest({name})")

    @app.get("/v1/models/{name}")
    async def model_status(name: str) -> dict:
        tf_serving_model(name)
        state = "AVAILABLE" if served.ready else "LOADING"
        return {
            "model_version_status": [
                {
                    "version": "1",
                    "state": state,
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    def tf_serving_version(name: str, version: str) -> None:
        if version != "1":
            raise RequestProblem(
                404, f"Servable not found for request: Specific({name}, {version})"
            )

    @app.get("/v1/models/{name}/versions/{version}")
    async def model_version_status(name: str, version: str) -> dict:
        tf_serving_version(name, version)
        return await model_status(name)

    @app.get("/v1/models/{name}/versions/{version}/metadata")
    async def model_version_metadata(name: str, version: str) -> dict:
        tf_serving_version(name, version)
        return await model_metadata(name)

    @app.post("/v1/models/{name}/versions/{version}:predict")
    async def tf_serving_version_predict(name: str, version: str, request: Request) -> Any:
        tf_serving_version(name, version)
        return await tf_serving_predict(name, request)

    @app.get("/v1/models/{name}/metadata")
    async def model_metadata(name: str) -> dict:
        tf_serving_model(name)
        return metadata_document(served.name, loaded(served))

    @app.post("/v1/models/{name}:predict")
    async def tf_serving_predict(name: str, request: Request) -> JSONResponse:
        tf_serving_model(name)
        run = loaded(served)
        body = await request.body()
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise RequestProblem(400, f"JSON Parse error: {error}") from None
        instances = tf_serving_instances(document)
        booleans = b"true" in body or b"false" in body
        items = [instance_pixels(item, i, run, booleans) for i, item in enumerate(instances)]
        encoded = [
            (f"instance {i}", item) for i, item in enumerate(items) if isinstance(item, bytes)
        ]
        decoded = dict(zip((key for key, _ in encoded), await classify(served, encoded)))
        for key, outcome in decoded.items():
            if isinstance(outcome, str):
                raise RequestProblem(400, f"{key}: {outcome}")
        futures = [
            decoded[f"instance {i}"] if isinstance(item, bytes) else served.batcher.submit(item)
            for i, item in enumerate(items)
        ]
        results = [r if isinstance(r, tuple) else await asyncio.wrap_future(r) for r in futures]
        request.state.batch = max((size for _, size in results), default=None)
        return JSONResponse({"predictions": [row.tolist() for row, _ in results]})

    return app


def tf_serving_instances(document: Any) -> list[Any]:
    """The list of instances of a TF Serving predict request: the row form
    ({"instances": [...]}) or the columnar one ({"inputs": [...]} or {"inputs":
    {"images": [...]}})."""
    if isinstance(document, dict) and "instances" in document:
        instances = document["instances"]
    elif isinstance(document, dict) and "inputs" in document:
        instances = document["inputs"]
        if isinstance(instances, dict):
            if set(instances) != {"images"}:
                raise RequestProblem(400, 'inputs must be a list, or {"images": [...]}.')
            instances = instances["images"]
    else:
        raise RequestProblem(
            400, 'The body must be {"instances": [...]} or {"inputs": [...]} (TF Serving\'s form).'
        )
    if not isinstance(instances, list) or not instances:
        raise RequestProblem(400, "instances must be a non-empty list.")
    return instances


def metadata_document(name: str, run: LoadedRun) -> dict[str, Any]:
    """TF Serving's model metadata: the serving_default signature, plus the labels."""
    height, width = run.image_size

    def tensor(name: str, dims: list[int]) -> dict[str, Any]:
        return {
            "dtype": "DT_FLOAT",
            "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims]},
            "name": name,
        }

    signature = {
        "inputs": {"images": tensor("images", [-1, height, width, run.channels])},
        "outputs": {"probabilities": tensor("probabilities", [-1, run.num_classes])},
        "method_name": "tensorflow/serving/predict",
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": "1"},
        "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}},
        "labels": run.class_names,
    }


def explain_upload(
    served: Served, name: str, content: bytes, class_name: str | None = None
) -> tuple[Any, bytes | None]:
    """Grad-CAM of one upload, on the model's thread: (report.gradcam.Explained, the
    overlay PNG or None)."""
    from imgcls_cli.commands.explain import caption
    from imgcls_cli.report import plots
    from imgcls_cli.report.gradcam import METHOD_NAMES, Explained, GradCam, explain_paths

    too_large = pixel_limit_error(content, served.config.max_megapixels)
    if too_large:
        return Explained(name, error=too_large), None
    if served.cam is None:
        served.cam = GradCam(served.run.model)
    with scratch_file(name, content) as path:
        [item] = explain_paths([str(path)], served.run, served.cam, class_name)
    item.path = name
    if item.error is not None:
        return item, None
    png = plots.gradcam_png(
        item.image, item.heatmap, caption(item), name, METHOD_NAMES[served.cam.method]
    )
    return item, png
