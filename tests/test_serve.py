"""`imgcls serve`: real servers on 127.0.0.1 answered over HTTP. Most tests share one
server over the shapes run, started in this process (uvicorn on a thread, the port
picked by the OS); the command itself runs as a process once, to be stopped by SIGTERM
with requests in flight. The page is driven in Debian's chromium by Selenium."""

import base64
import http.client
import io
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from imgcls_cli import api

KEY = "a-long-secret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def start_server(run_dir: Path, api_key: str | None = KEY, **options) -> types.SimpleNamespace:
    from imgcls_cli.commands.serve import bind, build_server
    from imgcls_cli.config import ServeConfig
    from imgcls_cli.rundir.load import load_run

    lines: list[str] = []
    config = ServeConfig(port=0, **options)
    built = build_server(run_dir, bind("127.0.0.1", 0), config, api_key, lines.append)
    thread = threading.Thread(target=built.run, args=(lambda: load_run(run_dir),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not built.served.ready:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)

    def stop() -> None:
        built.uvicorn.should_exit = True
        thread.join(30)
        built.close()

    return types.SimpleNamespace(url=built.url, name=built.served.name, log=lines, stop=stop)


@pytest.fixture(scope="module")
def server(shapes_run):
    """The shapes run behind an API key, with small limits (1 MB bodies, 1 megapixel
    images) and model calls of up to 8 images."""
    served = start_server(
        shapes_run, max_batch=8, batch_timeout_ms=50.0, max_upload_mb=1.0, max_megapixels=1.0
    )
    yield served
    served.stop()


def request(url: str, method: str, path: str, body=None, headers=None, key: bool = True):
    """(status, headers, body) of one request."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request(
            method, path, body=body, headers={**(AUTH if key else {}), **(headers or {})}
        )
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def logged(server, predicate, timeout: float = 10.0) -> bool:
    """Whether a log line that satisfies predicate appears: a request's line is written
    after its answer is sent, so the client may read the answer first."""
    deadline = time.monotonic() + timeout
    while not any(predicate(line) for line in list(server.log)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, dict]:
    boundary = "imgcls-test-boundary"
    parts = []
    for name, content in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def post_files(url: str, files: list[tuple[str, bytes]], query: str = "", **kwargs):
    body, headers = multipart(files)
    status, _, content = request(url, "POST", "/predict" + query, body, headers, **kwargs)
    return status, json.loads(content)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def shape_files(shapes_run: Path) -> list[Path]:
    folder = shapes_run.parent / "shapes"
    return [
        sorted((folder / name).iterdir())[i] for i, name in enumerate(("circle", "square", "tri"))
    ]


def test_predictions_are_predicts_records(server, shapes_run):
    """The same records as `imgcls predict --json` (path: the upload's file name), the
    probabilities equal to float32 rounding (another batch, another summation order)."""
    files = shape_files(shapes_run)
    status, records = post_files(server.url, [(p.name, p.read_bytes()) for p in files], "?top_k=2")
    assert status == 200
    expected = api.predict(shapes_run, [str(p) for p in files], top_k=2)
    assert [r["path"] for r in records] == [p.name for p in files]
    for got, want in zip(records, expected, strict=True):
        assert got["label"] == want["label"] and got["error"] is None
        assert [e["label"] for e in got["top_k"]] == [e["label"] for e in want["top_k"]]
        np.testing.assert_allclose(
            [e["probability"] for e in got["top_k"]],
            [e["probability"] for e in want["top_k"]],
            atol=1e-6,
        )
    # One image as the whole body, named by ?filename=.
    body = files[0].read_bytes()
    status, _, content = request(server.url, "POST", "/predict?filename=a.png", body)
    [record] = json.loads(content)
    assert status == 200 and record["path"] == "a.png" and record["label"] == expected[0]["label"]


def test_each_bad_upload_is_its_own_record(server, shapes_run):
    good = shape_files(shapes_run)[0]
    content = good.read_bytes()
    status, records = post_files(server.url, [("notes.txt", b"hello"), (good.name, content)])
    assert status == 207
    assert records[0]["error"] == "not an image (format not recognised)"
    assert records[0]["label"] is None and records[1]["error"] is None
    huge = png(np.zeros((1100, 1000, 3), np.uint8))  # 1.1 megapixels, a small file
    bad = [("empty.png", b""), ("cut.png", content[: len(content) // 2]), ("huge.png", huge)]
    status, records = post_files(server.url, bad)
    assert status == 422
    errors = [r["error"] for r in records]
    assert errors[0] == "empty file (0 bytes)"
    assert "truncated" in errors[1] or "damaged" in errors[1], errors[1]
    assert "above this server's limit of 1 megapixels" in errors[2]
    status, _, content = request(server.url, "GET", "/health")
    assert (status, json.loads(content)) == (200, {"status": "ok"})
    # Malformed requests: one line each, never a 500.
    status, _, content = request(server.url, "POST", "/predict?top_k=0", b"x")
    assert status == 400 and "top_k must be a whole number" in json.loads(content)["error"]
    status, _, content = request(server.url, "POST", "/predict", b"")
    assert status == 400 and "No image" in json.loads(content)["error"]


def test_tf_servings_rest_api(server, shapes_run):
    base = f"/v1/models/{server.name}"
    assert request(server.url, "GET", "/ready")[:3:2] == (200, b'{"ready":true}')
    status, _, content = request(server.url, "GET", base)
    assert status == 200
    assert json.loads(content)["model_version_status"][0]["state"] == "AVAILABLE"
    status, _, content = request(server.url, "GET", base + "/metadata")
    signature = json.loads(content)["metadata"]["signature_def"]["signature_def"]["serving_default"]
    dims = [int(d["size"]) for d in signature["inputs"]["images"]["tensor_shape"]["dim"]]
    assert dims == [-1, 16, 16, 3]
    assert json.loads(content)["labels"] == ["circle", "square", "tri"]

    files = shape_files(shapes_run)
    pixels = np.asarray(Image.open(files[0]).convert("RGB")).tolist()  # already 16x16
    encoded = base64.b64encode(files[1].read_bytes()).decode()
    body = json.dumps({"instances": [pixels, {"b64": encoded}]})
    status, _, content = request(server.url, "POST", base + ":predict", body)
    assert status == 200
    predictions = np.array(json.loads(content)["predictions"])
    _, records = post_files(server.url, [(p.name, p.read_bytes()) for p in files[:2]], "?top_k=3")
    for row, record in zip(predictions, records, strict=True):
        by_name = {e["label"]: e["probability"] for e in record["top_k"]}
        np.testing.assert_allclose(
            row, [by_name[n] for n in ("circle", "square", "tri")], atol=1e-6
        )

    wrong = json.dumps({"instances": [[[1, 2], [3, 4]]]})
    flagged = json.loads(json.dumps(pixels))
    flagged[3][4][1] = True  # numpy would read it as 1
    for body, status_wanted, words in (
        (json.dumps({"instances": [flagged]}), 400, "instance 0: pixel values must be numbers"),
        ("{not json", 400, "JSON Parse error"),
        (wrong, 400, "instance 0 has shape [2, 2]; expected 16x16x3 pixels"),
        (json.dumps({"instances": [{"b64": "aGVsbG8="}]}), 400, "not an image"),
        (json.dumps({"rows": []}), 400, '{"instances": [...]}'),
    ):
        status, _, content = request(server.url, "POST", base + ":predict", body)
        assert status == status_wanted and words in json.loads(content)["error"], content
    status, _, content = request(server.url, "POST", "/v1/models/other:predict", body)
    assert status == 404
    assert json.loads(content) == {"error": "Servable not found for request: Latest(other)"}
    # Clients that pin version 1 (the only one) work; another version is not found.
    body = json.dumps({"instances": [pixels]})
    status, _, content = request(server.url, "POST", base + "/versions/1:predict", body)
    assert status == 200 and np.allclose(json.loads(content)["predictions"][0], predictions[0])
    status, _, content = request(server.url, "GET", base + "/versions/2/metadata")
    assert status == 404 and "Specific(" in json.loads(content)["error"]
    # Unknown paths and methods answer in the same shape.
    status, _, content = request(server.url, "GET", "/nowhere")
    assert (status, json.loads(content)) == (404, {"error": "Not Found (GET /nowhere)"})
    status, _, content = request(server.url, "GET", "/predict")
    assert status == 405 and json.loads(content)["error"].startswith("Method Not Allowed")
    unparsable = {"Content-Type": "multipart/form-data"}  # no boundary
    status, _, content = request(server.url, "POST", "/predict", b"x", unparsable)
    assert (status, json.loads(content)) == (
        400,
        {"error": "Missing boundary in multipart (POST /predict)"},
    )


def test_bodies_above_the_limit_are_refused_before_they_are_read(server):
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        headers = (
            f"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            "Content-Type: image/png\r\nContent-Length: 5000000\r\n\r\n"
        )
        sock.sendall(headers.encode())  # and not one byte of the 5 MB body
        answer = b""
        while chunk := sock.recv(65536):  # the server answers, then closes
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413"), answer
    assert "above this server's limit of 1 MB (--max-upload-mb)" in answer
    # Without a Content-Length (chunked), refused as soon as it passes the limit (the
    # client may see the answer, or the connection closed under the rest of its body).
    assert logged(server, lambda line: " 413 " in line)  # that refusal's line is written
    refusals = sum("413" in line for line in server.log)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    chunks = (b"x" * 65536 for _ in range(40))
    try:
        connection.request("POST", "/predict", body=chunks, headers=AUTH, encode_chunked=True)
        assert connection.getresponse().status == 413
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        connection.close()
    assert logged(server, lambda _: sum("413" in line for line in server.log) == refusals + 1)


def test_the_api_key_guards_everything_but_health_and_the_page(server):
    for headers, said in (
        ({}, "This server needs an API key"),
        ({"Authorization": "Bearer wrong"}, "The API key is wrong"),
        ({"Authorization": KEY}, "This server needs an API key"),  # no scheme: no key
    ):
        status, answer, content = request(server.url, "GET", "/model", headers=headers, key=False)
        assert status == 401 and answer["www-authenticate"] == "Bearer"
        assert json.loads(content)["error"] == f"{said}: send it as `Authorization: Bearer KEY`."
    assert request(server.url, "GET", "/favicon.ico", key=False)[0] == 204
    status, _, content = request(server.url, "POST", "/predict", b"x", key=False)
    assert status == 401
    assert request(server.url, "GET", "/health", key=False)[0] == 200
    status, _, page = request(server.url, "GET", "/", key=False)
    assert status == 200 and b"<title>imgcls serve</title>" in page
    assert b"http://" not in page and b"https://" not in page  # nothing from a CDN
    status, _, content = request(server.url, "GET", "/model")
    assert status == 200 and json.loads(content)["classes"] == ["circle", "square", "tri"]


def batch_sizes(metrics: str) -> tuple[int, int]:
    """(model calls of one image, all model calls) from /metrics."""
    ones = re.search(r'^imgcls_batch_size_bucket\{le="1"\} (\d+)$', metrics, re.M)
    total = re.search(r"^imgcls_batch_size_count (\d+)$", metrics, re.M)
    return int(ones.group(1)), int(total.group(1))


def test_concurrent_requests_share_model_calls(server, shapes_run):
    files = [(p.name, p.read_bytes()) for p in shape_files(shapes_run)]
    before = batch_sizes(request(server.url, "GET", "/metrics")[2].decode())
    start = threading.Barrier(16)

    def one(i: int):
        start.wait()
        return post_files(server.url, [files[i % 3]])

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(16)))
    assert all(status == 200 for status, _ in answers)
    assert [records[0]["label"] for _, records in answers] == [
        ("circle", "square", "tri")[i % 3] for i in range(16)
    ]
    metrics = request(server.url, "GET", "/metrics")[2].decode()
    ones, calls = (after - earlier for after, earlier in zip(batch_sizes(metrics), before))
    assert calls < 16 and ones < calls, metrics  # some model call served several requests
    assert re.search(r'imgcls_requests_total\{endpoint="/predict",status="200"\} \d+', metrics)
    assert 'imgcls_request_seconds_bucket{endpoint="/predict",le="+Inf"}' in metrics
    assert logged(server, lambda line: re.search(r"^POST /predict 200 [\d.]+ ms batch \d+$", line))


def test_explain_returns_the_overlay_or_its_peak(server, shapes_run):
    content = shape_files(shapes_run)[2].read_bytes()
    status, headers, overlay = request(server.url, "POST", "/explain", content)
    assert status == 200 and headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(overlay)).size[0] > 16
    status, _, answer = request(server.url, "POST", "/explain?format=json", content)
    record = json.loads(answer)
    assert status == 200 and record["label"] == "tri"
    assert all(0 <= value <= 1 for value in record["peak"] + record["centre"])
    status, _, answer = request(server.url, "POST", "/explain", b"not an image")
    assert status == 422 and "not an image" in json.loads(answer)["error"]
    status, _, answer = request(server.url, "POST", "/explain?format=json&class=square", content)
    assert status == 200 and json.loads(answer)["explained_class"] == "square"
    status, _, answer = request(server.url, "POST", "/explain?class=dog", content)
    assert status == 400 and "Unknown class 'dog'" in json.loads(answer)["error"]
    body, headers = multipart([("a.png", content), ("b.png", content)])
    status, _, answer = request(server.url, "POST", "/explain", body, headers)
    assert status == 400 and json.loads(answer)["error"] == "Send one image to /explain; got 2."


def test_an_export_is_served_by_its_own_runtime(shapes_run, tmp_path):
    folder = tmp_path / "tflite"
    api.export(shapes_run, output=folder, format="tflite")
    served = start_server(folder, api_key=None)
    try:
        files = shape_files(shapes_run)
        status, records = post_files(
            served.url, [(p.name, p.read_bytes()) for p in files], key=False
        )
        assert status == 200 and [r["label"] for r in records] == ["circle", "square", "tri"]
        status, _, content = request(served.url, "GET", "/model", key=False)
        assert json.loads(content)["format"] == "tflite" and not json.loads(content)["explain"]
        status, _, content = request(
            served.url, "POST", "/explain", files[0].read_bytes(), key=False
        )
        assert status == 501 and "serve the run directory" in json.loads(content)["error"]
    finally:
        served.stop()


def test_the_page_in_a_real_browser(server, shapes_run, tmp_path):
    """Debian's chromium (installed by .ci/run) through its chromedriver: the page asks for
    the key, shows the model, classifies a picked image and opens its heatmap; a file
    that is not an image gets its reason, and no picture."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, "install chromium and chromium-driver (apt-get; .ci/run does)"
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    page = webdriver.Chrome(service=Service(driver), options=options)
    wait = WebDriverWait(page, 30)
    try:
        page.get(server.url + "/")
        wait.until(lambda p: p.find_element(By.ID, "key-box").is_displayed())
        page.find_element(By.ID, "key").send_keys(KEY)
        page.find_element(By.ID, "key-save").click()
        wait.until(lambda p: "circle, square, tri" in p.find_element(By.ID, "about").text)
        assert "input 16x16" in page.find_element(By.ID, "about").text
        picker = page.find_element(By.ID, "files")
        page.execute_script("arguments[0].hidden = false", picker)
        tri = shape_files(shapes_run)[2]
        picker.send_keys(str(tri))
        card = wait.until(lambda p: p.find_element(By.CSS_SELECTOR, ".card[data-label]"))
        assert card.get_attribute("data-label") == "tri"
        assert card.find_element(By.CSS_SELECTOR, ".bar .label").text == "tri"
        card.find_element(By.TAG_NAME, "img").click()
        wait.until(lambda p: p.find_elements(By.CSS_SELECTOR, ".card img.heatmap"))
        notes = tmp_path / "notes.png"
        notes.write_text("not an image")
        picker.send_keys(str(notes))
        error = wait.until(lambda p: p.find_element(By.CSS_SELECTOR, ".card .error"))
        assert "not an image (format not recognised)" in error.text, error.text
        failed = error.find_element(By.XPATH, "ancestor::*[contains(@class, 'card')]")
        assert not failed.find_element(By.TAG_NAME, "img").is_displayed()
    finally:
        page.quit()


def test_refusals_come_before_the_model_loads(runner, cli_app, shapes_run, tmp_path, monkeypatch):
    result = runner.invoke(cli_app, ["serve", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "does not exist" in result.output
    # No run given and none under runs/: the hint names how serve takes one (no --model).
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli_app, ["serve"])
    assert result.exit_code == 1 and "pass the run: imgcls serve RUN_DIR" in result.output
    assert "--model" not in result.output
    result = runner.invoke(cli_app, ["serve", str(shapes_run), "--port", "70000"])
    assert result.exit_code == 2 and "--port" in result.output
    result = runner.invoke(cli_app, ["serve", str(shapes_run), "--name", "a/b"])
    assert result.exit_code == 2 and "--name 'a/b'" in result.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(cli_app, ["serve", str(shapes_run), "--port", str(port)])
    assert result.exit_code == 1 and f"Port {port} on 127.0.0.1 is in use" in result.output
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a)
    )
    result = runner.invoke(cli_app, ["serve", str(shapes_run)])
    assert result.exit_code == 2
    assert "imgcls serve needs uvicorn: pip install 'imgcls[serve]'" in result.output


@pytest.mark.slow  # starts imgcls
def test_stopped_while_the_model_loads_it_exits_0(shapes_run):
    """SIGTERM as soon as the server answers, while TensorFlow and the model load in a
    thread: the load finishes, then the process ends cleanly (it used to abort, exit 134,
    "terminate called…", when it ended with TensorFlow loading)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "imgcls_cli", "serve", str(shapes_run), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first = process.stdout.readline()
    assert "Serving" in first, first
    process.send_signal(signal.SIGTERM)
    rest = process.stdout.read()
    assert process.wait(timeout=60) == 0, first + rest
    assert rest.strip().splitlines() == ["Stopped before the model was ready."], rest


def test_sigterm_answers_the_requests_in_flight_then_exits_0(shapes_run, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "imgcls_cli", "serve", str(shapes_run), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while not any("Serving" in line for line in lines):
            assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        url = re.search(r"at (http://\S+)", "".join(lines)).group(1)
        parts = urlsplit(url)
        # Answering while the model loads: alive, not ready, model endpoints 503.
        assert request(url, "GET", "/health", key=False)[0] == 200
        status, _, content = request(url, "GET", "/ready", key=False)
        assert (status, json.loads(content)) == (503, {"ready": False})
        status, _, content = request(url, "POST", "/predict", b"x", key=False)
        assert status == 503 and "still loading" in json.loads(content)["error"]
        while not any("is ready" in line for line in lines):
            assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        # Each logged, though TensorFlow was importing in the loader thread meanwhile.
        loading = [line.split()[:3] for line in lines]
        for logged in (["GET", "/health", "200"], ["GET", "/ready", "503"]):
            assert logged in loading, "".join(lines)
        assert ["POST", "/predict", "503"] in loading, "".join(lines)
        # Large photos take a while to decode: these requests are still being answered when
        # SIGTERM comes.
        photo = png(np.random.default_rng(0).integers(0, 255, (1200, 1200, 3), dtype=np.uint8))
        body, headers = multipart([(f"p{i}.png", photo) for i in range(3)])
        connections = []
        for _ in range(4):
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
            connection.request("POST", "/predict", body=body, headers=headers)
            connections.append(connection)
        process.send_signal(signal.SIGTERM)
        answers = [c.getresponse() for c in connections]
        assert [a.status for a in answers] == [200] * 4
        assert all(len(json.loads(a.read())) == 3 for a in answers)
        assert process.wait(timeout=60) == 0
        reader.join(10)
        output = "".join(lines)
        assert "Stopped: every request in flight was answered." in output
        assert len(re.findall(r"POST /predict 200 [\d.]+ ms batch \d+", output)) == 4, output
        assert "Traceback" not in output
        with pytest.raises(OSError):
            socket.create_connection((parts.hostname, parts.port), timeout=5)
    finally:
        if process.poll() is None:  # a failed assertion above: no server is left behind
            process.kill()
            process.wait()


def test_listening_beyond_this_machine_without_a_key_warns(shapes_run, monkeypatch):
    from imgcls_cli.commands import serve
    from imgcls_cli.errors import ImgclsError

    assert serve.is_loopback("127.0.0.1") and serve.is_loopback("::1")
    assert serve.is_loopback("localhost")
    assert not serve.is_loopback("0.0.0.0") and not serve.is_loopback("192.168.1.5")

    class Warnings:
        def __init__(self):
            self.lines = []

        def warning(self, message):
            self.lines.append(message)

        def info(self, message):
            pass

    # Bound, the server would run: here it stops at once, its socket closed.
    monkeypatch.setattr(serve, "run_serve", lambda run_dir, load, sock, *args, **kw: sock.close())
    heard = Warnings()
    api.serve(shapes_run, host="0.0.0.0", port=0, reporter=heard)
    assert heard.lines == [
        "Listening on 0.0.0.0 without an API key: anyone who can reach this machine can "
        "use the model."
    ]
    heard = Warnings()
    api.serve(shapes_run, host="0.0.0.0", port=0, api_key="k", reporter=heard)
    assert heard.lines == []
    # A refused address is the only line: no warning about a server that never listens.
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        heard = Warnings()
        with pytest.raises(ImgclsError, match=f"Port {port} on 0.0.0.0 is in use"):
            api.serve(shapes_run, host="0.0.0.0", port=port, reporter=heard)
        assert heard.lines == []


def test_kept_alive_connections_are_answered_without_nagles_delay():
    """Found by benchmarks/bench_serve.py: on a socket handed to uvicorn, each answer on a
    kept-alive connection waited 40 ms for a delayed ACK; the listening socket now carries
    TCP_NODELAY, which every accepted connection inherits."""
    from imgcls_cli.commands.serve import bind

    with bind("127.0.0.1", 0) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        parts = sock.getsockname()
        client = socket.create_connection(parts, timeout=5)
        accepted, _ = sock.accept()
        with client, accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_an_unexpected_failure_is_one_json_500_and_the_server_goes_on(
    server, shapes_run, monkeypatch
):
    from imgcls_cli.serve import app as serve_app

    def broken(*args, **kwargs):
        raise RuntimeError("planted")

    monkeypatch.setattr(serve_app, "top_classes", broken)
    content = shape_files(shapes_run)[0].read_bytes()
    status, _, answer = request(server.url, "POST", "/predict", content)
    assert status == 500
    assert json.loads(answer) == {"error": "Internal error: RuntimeError: planted"}
    assert logged(server, lambda line: line.startswith("POST /predict 500 "))
    monkeypatch.undo()
    assert request(server.url, "POST", "/predict", content)[0] == 200


def test_the_shape_message_names_every_shape_accepted():
    from types import SimpleNamespace

    from imgcls_cli.serve.app import expected_shape

    gray, colour = (
        SimpleNamespace(image_size=(32, 28), channels=1),
        SimpleNamespace(image_size=(32, 28), channels=3),
    )
    assert expected_shape(gray).startswith(
        "32x28x1 pixels, 0-255 ([32][28][1] or [32][28] nested lists), or "
    )
    assert expected_shape(colour).startswith("32x28x3 pixels, 0-255 ([32][28][3] nested lists)")
