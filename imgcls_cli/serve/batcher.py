"""Dynamic batching: images from concurrent requests go to the model in one call.

One thread owns the model. It takes the first image waiting, then everything else that
is waiting, up to `max_batch`; it waits up to `timeout_s` for more only while other
requests are still decoding their images (`arriving`), so a lone request never waits
for company. Requests await a Future per image, off the event loop.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np

STOP = object()


class Batcher:
    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        max_batch: int,
        timeout_s: float,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self.predict = predict
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self.on_batch = on_batch
        self._queue: queue.Queue[Any] = queue.Queue()
        self._arriving = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="imgcls-model", daemon=True)
        self._thread.start()

    # --- What requests call -------------------------------------------------------------

    def expect(self, count: int) -> None:
        """`count` images are being decoded and will be submitted (or given up)."""
        with self._lock:
            self._arriving += count

    def arrived(self, count: int = 1) -> None:
        with self._lock:
            self._arriving = max(0, self._arriving - count)

    def submit(self, image: np.ndarray) -> Future:
        """(probabilities, size of the model call it went in) of one image (HxWxC float32
        at the model's input size)."""
        future: Future = Future()
        self._queue.put((image, future))
        return future

    def call(self, work: Callable[[], Any]) -> Future:
        """Run `work` on the model's thread, between batches (Grad-CAM uses the model)."""
        future: Future = Future()
        self._queue.put((work, future))
        return future

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        self._queue.put(STOP)
        self._thread.join()

    # --- The model's thread -------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is STOP:
                return
            if callable(item[0]):
                self._run_task(*item)
                continue
            batch, stop = self._gather([item])
            self._run_batch(batch)
            if stop:
                return

    def _gather(self, batch: list) -> tuple[list, bool]:
        deadline = time.monotonic() + self.timeout_s
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                with self._lock:
                    waiting = self._arriving > 0
                remaining = deadline - time.monotonic()
                if not waiting or remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=min(remaining, 0.001))
                except queue.Empty:
                    continue
            if item is STOP:
                return batch, True
            if callable(item[0]):
                self._run_task(*item)
                continue
            batch.append(item)
        return batch, False

    def _run_batch(self, batch: list) -> None:
        futures = [future for _, future in batch]
        try:
            probabilities = np.asarray(self.predict(np.stack([image for image, _ in batch])))
        except Exception as error:  # the model failed: every request of the batch hears it
            for future in futures:
                future.set_exception(error)
            return
        self.on_batch(len(batch))
        for future, row in zip(futures, probabilities):
            future.set_result((row, len(batch)))

    @staticmethod
    def _run_task(work: Callable[[], Any], future: Future) -> None:
        try:
            future.set_result(work())
        except Exception as error:  # noqa: BLE001 - the caller raises it
            future.set_exception(error)
