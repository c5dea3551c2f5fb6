"""Synthetic pairs made ahead of need: the chunks of one request, in order, in a background thread or on
demand.

What a chunk holds depends only on (request, chunk index), never on when it was made, so the
asynchronous and the synchronous producer give a training run the very same pairs; the background
thread only changes how long the trainer waits for them (``wait_seconds``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

logger = logging.getLogger(__name__)

Chunk = Any  # whatever make_chunk returns, e.g. (images, masks)


class ProducerClosedError(RuntimeError):
    """The producer was closed while a chunk was still awaited."""


class ChunkProducer:
    """Produces ``make_chunk(request, i)`` for i = 0 .. num_chunks - 1 of the current request.

    Args:
        make_chunk: a function of (request, chunk index) to its chunk.
        asynchronous: make chunks in a background thread as soon as a request is submitted; otherwise
            each chunk is made when ``chunk`` first asks for it.
        device: where make_chunk runs; on CUDA the background thread uses a stream of its own.
    """

    def __init__(
        self,
        make_chunk: Callable[[Any, int], Chunk],
        asynchronous: bool = True,
        device: torch.device | None = None,
    ) -> None:
        self.make_chunk = make_chunk
        self.asynchronous = asynchronous
        self.device = device or torch.device("cpu")
        self.wait_seconds = 0.0  # time the consumer spent blocked in ``chunk``
        self.produce_seconds = 0.0  # time spent making chunks (in whichever thread)
        self._lock = threading.Condition()
        self._request: Any = None
        self._generation = 0  # bumped by every submit, so a worker drops chunks of an old request
        self._num_chunks = 0
        self._chunks: dict[int, Chunk] = {}
        self._error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        if asynchronous:
            self._thread = threading.Thread(target=self._work, name="gauda-producer", daemon=True)
            self._thread.start()

    # -- consumer side -----------------------------------------------------------------------------------

    def submit(self, request: Any, num_chunks: int) -> None:
        """Replace the current request (its chunks are dropped) by ``request`` of ``num_chunks`` chunks."""
        with self._lock:
            self._check_open()
            self._request, self._num_chunks = request, num_chunks
            self._generation += 1
            self._chunks = {}
            self._error = None
            self._lock.notify_all()

    @property
    def num_chunks(self) -> int:
        return self._num_chunks

    def chunk(self, index: int) -> Chunk:
        """Chunk ``index`` of the current request, waiting for the background thread if needed."""
        if not 0 <= index < self._num_chunks:
            raise IndexError(f"chunk {index}: the request has {self._num_chunks} chunks")
        if not self.asynchronous:
            with self._lock:
                if index not in self._chunks:
                    self._chunks[index] = self._timed_make(self._request, index)
                return self._chunks[index]
        start = time.perf_counter()
        with self._lock:
            while index not in self._chunks:
                self._check_open()
                if self._error is not None:
                    raise RuntimeError("synthetic pair generation failed in the background") from self._error
                self._lock.wait()
            self.wait_seconds += time.perf_counter() - start
            return self._chunks[index]

    def close(self, timeout: float = 60.0) -> None:
        """Stop the background thread (after the chunk it is making) and drop every chunk."""
        with self._lock:
            self._closed = True
            self._chunks = {}
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("the synthetic-pair producer did not stop within %.0f s", timeout)

    @property
    def alive(self) -> bool:
        """Whether the background thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def _check_open(self) -> None:
        if self._closed:
            raise ProducerClosedError("the synthetic-pair producer is closed")

    # -- producer side -----------------------------------------------------------------------------------

    def _timed_make(self, request: Any, index: int) -> Chunk:
        start = time.perf_counter()
        chunk = self.make_chunk(request, index)
        self.produce_seconds += time.perf_counter() - start
        return chunk

    def _next_job(self) -> tuple[int, Any, int] | None:
        """(generation, request, chunk index) of the first chunk still to make; None once closed."""
        with self._lock:
            while True:
                if self._closed:
                    return None
                if self._request is not None and self._error is None:
                    missing = [i for i in range(self._num_chunks) if i not in self._chunks]
                    if missing:
                        return self._generation, self._request, missing[0]
                self._lock.wait()

    def _work(self) -> None:
        stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        while (job := self._next_job()) is not None:
            generation, request, index = job
            try:
                if stream is not None:
                    with torch.cuda.stream(stream):
                        chunk = self._timed_make(request, index)
                    stream.synchronize()  # the consumer's stream may read it at once
                else:
                    chunk = self._timed_make(request, index)
            except BaseException as error:  # handed to the consumer, which raises it
                with self._lock:
                    if generation == self._generation:
                        self._error = error
                    self._lock.notify_all()
                continue
            with self._lock:
                if generation == self._generation and not self._closed:
                    self._chunks[index] = chunk
                self._lock.notify_all()
