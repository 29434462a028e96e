"""The batching scheduler: many concurrent requests, one model, one batch per decode step.

Callers (threads or asyncio tasks) hand a prepared :class:`Request` to
:meth:`BatchScheduler.submit` and wait on its future or read its token stream. One worker
thread owns the model: between decode steps it admits waiting requests (prefilled together,
then merged into the running batch), steps every row once, hands each row its token and
retires rows that are done, cancelled or out of time. Each row carries its own expert
weights (zeros for base-only rows), sampling settings (the request's ``GenerationParams``,
whose defaults are the reply defaults) and stop strings. The worker exits
when there is nothing to do and starts again on the next request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import torch

from persona_agents.decoding import DecodeBatch, Row, TokenTable, check_supported
from persona_agents.streaming import cut_at_stop

log = logging.getLogger(__name__)

_END = object()


class RequestCancelled(Exception):
    """The request was cancelled before it finished."""


class Request:
    """One generation request: a decoding row, its result future and (optionally) its tokens.

    ``finish`` is called by the worker with the ids generated and a finish reason and turns them
    into the result (the engine builds a ``Generation``).
    """

    def __init__(
        self,
        row: Row,
        stop: tuple[str, ...],
        finish: Callable[[list[int], str], Any],
        *,
        max_time: float | None = None,
        stream: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.row = row
        row.owner = self
        self.stop = stop
        self._finish = finish
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.deadline = None if max_time is None else time.monotonic() + max_time
        self.cancelled = threading.Event()
        self._loop = loop
        self._tokens: Any = None
        if stream:
            self._tokens = asyncio.Queue() if loop is not None else queue.SimpleQueue()

    def cancel(self) -> None:
        """Stop generating for this request at the next step; its future raises RequestCancelled."""
        self.cancelled.set()

    # --- called by the worker ------------------------------------------------------------------
    def _put(self, item: Any) -> None:
        if self._tokens is None:
            return
        if self._loop is None:
            self._tokens.put(item)
            return
        try:
            self._loop.call_soon_threadsafe(self._tokens.put_nowait, item)
        except RuntimeError:  # the event loop closed: nobody is listening any more
            self.cancel()

    def _token(self, token: int) -> None:
        self._put(token)

    def _done(self, reason: str) -> None:
        try:
            result = self._finish(self.row.generated, reason)
        except BaseException as exc:  # a result that cannot be built is the caller's error
            self._fail(exc)
            return
        if not self.future.done():
            self.future.set_result(result)
        self._put(_END)

    def _fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)
        self._put(_END)

    # --- called by the consumer ---------------------------------------------------------------
    def tokens(self) -> Iterator[int]:
        """Token ids as they are generated (sync streams)."""
        while (item := self._tokens.get()) is not _END:
            yield item

    async def atokens(self) -> AsyncIterator[int]:
        while (item := await self._tokens.get()) is not _END:
            yield item


class BatchScheduler:
    """Gathers concurrent requests into one batch with a weight vector per row."""

    def __init__(self, model: Any, mixer: Any, tokenizer: Any, eos_ids: set[int], *, max_batch_size: int = 16,
                 max_wait: float = 0.005) -> None:
        check_supported(model)
        self.model = model
        self.mixer = mixer
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        # per-token facts for the repetition rules (0.5 s for a 49k vocabulary, in the caller's thread)
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        vocab = head.weight.shape[0] if head is not None else model.config.vocab_size
        self._tokens = TokenTable(tokenizer, vocab)
        self._pending: deque[Request] = deque()
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        # what ran, for tests and the bench: decode steps, batch size per step, rows per prefill
        self.steps = 0
        self.batch_sizes: deque[int] = deque(maxlen=4096)
        self.prefill_sizes: deque[int] = deque(maxlen=4096)

    def _new_batch(self) -> DecodeBatch:
        return DecodeBatch(self.model, self.eos_ids, self.mixer.num_experts, self._tokens, self._decode)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def submit(self, request: Request) -> Request:
        with self._cond:
            self._pending.append(request)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="persona-fuse-scheduler", daemon=True)
                self._worker.start()
            self._cond.notify()
        return request

    @property
    def running(self) -> bool:
        return self._worker is not None

    # --- the worker ----------------------------------------------------------------------------
    def _admit(self, batch: DecodeBatch) -> list[Request] | None:
        """Waiting requests that fit in the batch (None: idle, the worker exits).

        When the batch is empty, wait up to max_wait for company before the first prefill."""
        with self._cond:
            while not self._pending and not batch.rows:
                if not self._cond.wait(timeout=1.0) and not self._pending:
                    self._worker = None  # decided under the lock: the next submit starts a new worker
                    return None
            if not batch.rows and len(self._pending) < self.max_batch_size:
                until = time.monotonic() + self.max_wait
                while len(self._pending) < self.max_batch_size and (left := until - time.monotonic()) > 0:
                    self._cond.wait(timeout=left)
            joining = []
            while self._pending and len(batch.rows) + len(joining) < self.max_batch_size:
                request = self._pending.popleft()
                if request.cancelled.is_set():
                    request._fail(RequestCancelled("cancelled before it started"))
                else:
                    joining.append(request)
            return joining

    def _run(self) -> None:
        batch = self._new_batch()
        while True:
            joining = self._admit(batch)
            if joining is None:
                return
            try:
                if joining:
                    rows = [r.row for r in joining]
                    self.prefill_sizes.append(len(rows))
                    with self.mixer.active(batch.row_weights(rows)), torch.inference_mode():
                        tokens = batch.prefill(rows)
                    self._deliver(batch, rows, tokens)
                if batch.rows:
                    self.batch_sizes.append(len(batch.rows))
                    with self.mixer.active(batch.row_weights(batch.rows)), torch.inference_mode():
                        tokens = batch.step()
                    self.steps += 1
                    self._deliver(batch, list(batch.rows), tokens)
                time.sleep(0)  # let waiting threads (an event loop) take the GIL between steps
            except BaseException as exc:  # a failed forward fails every row in it, never the worker
                log.exception("generation failed")
                for request in [r.owner for r in batch.rows if r.owner not in joining]:
                    request._fail(exc)
                for request in joining:
                    request._fail(exc)
                batch = self._new_batch()

    def _deliver(self, batch: DecodeBatch, rows: list[Row], tokens: list[int]) -> None:
        """Hand each row its token and retire the rows that are finished."""
        finished: dict[int, tuple[Request, str | None]] = {}
        now = time.monotonic()
        for row, token in zip(rows, tokens):
            request: Request = row.owner
            request._token(token)
            reason = self._finish_reason(request, token, now)
            if reason is not None:
                finished[id(row)] = (request, reason)
        if finished:
            batch.keep([i for i, r in enumerate(batch.rows) if id(r) not in finished])
            for request, reason in finished.values():
                if reason == "cancelled":
                    request._fail(RequestCancelled("cancelled"))
                else:
                    request._done(reason)

    def _finish_reason(self, request: Request, token: int, now: float) -> str | None:
        row = request.row
        if request.cancelled.is_set():
            return "cancelled"
        if token in self.eos_ids:
            return "stop"
        if request.stop and cut_at_stop(self.tokenizer.decode(row.generated, skip_special_tokens=True), request.stop)[1]:
            return "stop"
        if len(row.generated) >= row.max_new_tokens:
            return "length"
        if request.deadline is not None and now >= request.deadline:
            return "length"
        return None
