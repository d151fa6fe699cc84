"""Running rewards so that nothing a reward sees can stop training.

The GRPO stage wraps every reward in ``guard(fn, timeout_s=..., on_error=...)``. The guarded
callable keeps TRL's signature and the reward's ``__name__``, and promises:

* **Bounded input.** Each completion is turned into a plain ``str`` (a chat-format completion,
  a list of messages, is joined into its text; bytes are decoded), lone surrogates become
  ``?`` (the Rust tokenizers refuse them), and text longer than ``max_chars`` keeps its head
  and its tail, which hold the tags and the final answer, around a ``[...]`` mark. That bounds
  the time of every regex a reward runs.
* **Exceptions stay per sample.** The batch is scored in one call; if that call raises (or
  returns the wrong number of values) the batch is scored again one sample at a time, so one
  bad sample gets ``on_error`` and its neighbours keep their rewards. A value that is not a
  number, or is infinite, counts as an error too; NaN means "skip" in TRL and becomes None.
* **Time limits from any thread.** Rewards that may hang (a reward with ``may_hang = True``,
  or one that takes a ``verifier`` argument, on a batch whose ``verifier`` column names a kind
  in ``verify.SLOW_VERIFIERS``, such as math-verify's ``math``) are scored in persistent worker
  processes, one sample per message; a sample that runs past ``timeout_s`` gets ``on_error``
  and its worker is killed and restarted. Signal-based alarms (math-verify's default) only
  work in the main thread, and TRL may call rewards from others. Cheap pure-Python rewards
  run inline: their time is bounded by the input bound, not by a clock. So does a reward with
  ``whole_batch = True`` (a group score such as ``kimi_length``), which one-sample calls break.
* **Failure never pays.** ``on_error`` defaults to the reward's own ``failure_score``, which
  the registry declares per reward (``registry.register(..., failure=...)``) as the worst score
  it gives a wrong answer (``cosine_length``: its ``min_value_wrong``, -1.0), so that writing
  what hangs or breaks the verifier is never worth more than being wrong. ``"batch_min"`` (for
  unbounded scores such as a reward model's) gives a failed sample the lowest score of its
  batch.
* **Counted.** ``guarded.stats`` is a dict of counters (``samples``, ``errors``,
  ``timeouts``, ``skipped``, ``truncated``, ``restarts``) that the trainer logs and then
  clears with ``guarded.reset()``.

>>> def shaky(completions, **_):
...     return [1.0 / len(c) for c in completions]   # raises on the empty completion
>>> g = guard(shaky, timeout_s=5.0)
>>> g(["ab", "", "abcd"]), g.__name__, g.stats["errors"]
([0.5, 0.0, 0.25], 'shaky', 1)
"""

from __future__ import annotations

import collections
import inspect
import logging
import pickle
import threading
import time
from multiprocessing.connection import wait
from typing import Any, Callable

from r1pipeline.rewards.workers import _value, _Worker

log = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 200_000  # ~50k tokens; above the longest completions we generate
TRUNCATION_MARK = "\n[...]\n"
DEFAULT_TIMEOUT_S = 4.0  # per sample: with the kill and the reply, a call returns within 5 s
FROM_REWARD = "from_reward"  # on_error: the reward's own declared failure_score
BATCH_MIN = "batch_min"  # on_error: the lowest score of the batch (None if nothing scored)
_FAILED = object()  # a failed sample whose score waits for the rest of the batch
STARTUP_TIMEOUT_S = 120.0  # a new worker imports sympy & co., on a busy 2-core machine
# What TRL passes to reward functions that is not a per-sample column; not sent to workers.
TRL_OBJECTS = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})
COUNTERS = ("samples", "errors", "timeouts", "skipped", "truncated", "restarts")
_WARN_FIRST = 3  # log the first few events of each kind per reward, then only count them


def as_text(completion: Any, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str, bool]:
    """A completion as a bounded, UTF-8-encodable ``str``; the flag says it was truncated.

    >>> as_text([{"role": "assistant", "content": "hi"}])
    ('hi', False)
    >>> as_text("ab\\ud800cd"), as_text(b"\\xffok"), as_text(None)
    (('ab?cd', False), ('\\ufffdok', False), ('', False))
    >>> as_text("x" * 10 + "y" * 10, max_chars=8)
    ('xxxx\\n[...]\\nyyyy', True)
    """
    if not isinstance(completion, str):
        if completion is None:
            completion = ""
        elif isinstance(completion, (bytes, bytearray)):
            completion = bytes(completion).decode("utf-8", "replace")
        elif isinstance(completion, (list, tuple)):  # chat format: a list of messages
            completion = "".join(
                str(m.get("content") or "") if isinstance(m, dict) else str(m) for m in completion)
        else:
            completion = str(completion)
    truncated = len(completion) > max_chars
    if truncated:
        half = max_chars // 2
        completion = completion[:half] + TRUNCATION_MARK + completion[len(completion) - half:]
    if not completion.isascii():
        try:
            completion.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates
            completion = completion.encode("utf-8", "replace").decode("utf-8")
    return completion, truncated


def _values(out: Any, n: int) -> list:
    """Check a reward's output: n values. Raises when the count is wrong; a bad single value
    becomes the exception object itself, so it costs only its own sample."""
    out = list(out)
    if len(out) != n:
        raise ValueError(f"returned {len(out)} values for {n} completions")
    vals = []
    for v in out:
        try:
            vals.append(_value(v))
        except Exception as e:  # noqa: BLE001
            vals.append(e)
    return vals


def _row(columns: dict, i: int, n: int) -> dict:
    """The columns of sample ``i`` as one-row columns; non-column arguments pass unchanged."""
    return {k: [v[i]] if isinstance(v, (list, tuple)) and len(v) == n else v
            for k, v in columns.items()}


class _NoWorkers(RuntimeError):
    """Worker processes cannot run this reward (not picklable, cannot start)."""


_TODO = object()  # a sample not scored yet


def _takes_argument(fn: Callable, name: str) -> bool:
    """Whether ``fn`` names argument ``name`` (a reward that only has ``**_`` ignores it)."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True  # cannot tell: assume it does


class GuardedReward:
    """A reward wrapped by ``guard``; see the module docstring."""

    def __init__(self, fn: Callable[..., list], *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 on_error: float | str | None = FROM_REWARD, max_chars: int = DEFAULT_MAX_CHARS,
                 isolate: bool | None = None, workers: int = 1):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__doc__ = getattr(fn, "__doc__", None)
        self.timeout_s = float(timeout_s)
        self.on_error = getattr(fn, "failure_score", 0.0) if on_error == FROM_REWARD else on_error
        if not (self.on_error is None or self.on_error == BATCH_MIN or isinstance(self.on_error, (int, float))):
            raise ValueError(f"on_error must be a number, None or {BATCH_MIN!r}, got {self.on_error!r}")
        self.max_chars = int(max_chars)
        self.isolate = isolate
        self.workers = int(workers)
        self._counts = collections.Counter({k: 0 for k in COUNTERS})
        self._warned = collections.Counter()
        self._lock = threading.Lock()  # one batch at a time through the workers
        self._pool: list[_Worker] = []
        self._fn_bytes: bytes | None = None
        self._no_isolation = False  # set when workers cannot run this reward at all
        self._reads_verifier = _takes_argument(fn, "verifier")

    # -- the counters the trainer reads -------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        return dict(self._counts)

    def reset(self) -> None:
        for k in COUNTERS:
            self._counts[k] = 0

    def _event(self, kind: str, detail: str) -> None:
        self._counts[kind] += 1
        self._warned[kind] += 1
        level = logging.WARNING if self._warned[kind] <= _WARN_FIRST else logging.DEBUG
        log.log(level, "reward %s: %s (%s so far: %d)", self.__name__, detail, kind,
                self._counts[kind])

    # -- scoring -------------------------------------------------------------------------------
    def __call__(self, completions: list, **columns: Any) -> list[float | None]:
        n = len(completions)
        if n == 0:
            return []
        texts = []
        for c in completions:
            text, truncated = as_text(c, self.max_chars)
            texts.append(text)
            if truncated:
                self._counts["truncated"] += 1
        self._counts["samples"] += n
        if self._isolated(columns):
            with self._lock:
                values = self._score_in_workers(texts, columns)
        else:
            values = self._score_inline(texts, columns)
        values = self._resolve_failures(values)
        self._counts["skipped"] += sum(v is None for v in values)
        return values

    def _isolated(self, columns: dict) -> bool:
        if self._no_isolation:
            return False
        if self.isolate is not None:
            return self.isolate
        if getattr(self.fn, "whole_batch", False):  # scores depend on the batch: never split it
            return False
        if getattr(self.fn, "may_hang", False):
            return True
        if not self._reads_verifier:
            return False
        from r1pipeline.rewards.verify import SLOW_VERIFIERS

        kinds = columns.get("verifier")
        try:
            return bool(kinds) and any(k in SLOW_VERIFIERS for k in set(kinds))
        except TypeError:  # unhashable junk in the column: play safe
            return True

    def _fallback(self, i: int, reason: str) -> Any:
        self._event("errors", f"sample {i}: {reason}")
        return self._failure()

    def _failure(self) -> Any:
        return _FAILED if self.on_error == BATCH_MIN else self.on_error

    def _resolve_failures(self, values: list) -> list[float | None]:
        """Give ``batch_min`` failures the lowest score that the batch's other samples got."""
        if not any(v is _FAILED for v in values):
            return values
        scored = [v for v in values if v is not None and v is not _FAILED]
        low = min(scored) if scored else None
        return [low if v is _FAILED else v for v in values]

    def _score_inline(self, texts: list[str], columns: dict) -> list[float | None]:
        n = len(texts)
        try:
            vals = _values(self.fn(texts, **columns), n)
        except Exception as e:  # noqa: BLE001
            log.debug("reward %s failed on the batch (%r); scoring per sample", self.__name__, e)
            vals = []
            for i in range(n):
                try:
                    vals.append(_values(self.fn([texts[i]], **_row(columns, i, n)), 1)[0])
                except Exception as e1:  # noqa: BLE001
                    vals.append(e1)
        return [self._fallback(i, f"{type(v).__name__}: {v}") if isinstance(v, Exception) else v
                for i, v in enumerate(vals)]

    # -- the worker processes ------------------------------------------------------------------
    def _start_worker(self) -> _Worker:
        return _Worker(self._fn_bytes, self.__name__)

    def _restart(self, w: _Worker) -> _Worker:
        w.stop(kill=True)
        self._counts["restarts"] += 1
        self._pool.remove(w)
        try:
            new = self._start_worker()
        except Exception as e:  # noqa: BLE001
            raise _NoWorkers(f"cannot restart a worker: {type(e).__name__}: {e}") from e
        self._pool.append(new)
        return new

    def _score_in_workers(self, texts: list[str], columns: dict) -> list[float | None]:
        n = len(texts)
        results: list[Any] = [_TODO] * n
        try:
            self._run_workers(texts, columns, results)
        except _NoWorkers as e:
            log.warning("reward %s: cannot run in a worker process (%s); scoring inline from now "
                        "on, without a time limit", self.__name__, e)
            self._no_isolation = True
            self.close()
            todo = [i for i in range(n) if results[i] is _TODO]  # not those that timed out or died
            sub = {k: [v[i] for i in todo] if isinstance(v, (list, tuple)) and len(v) == n else v
                   for k, v in columns.items()}
            for i, v in zip(todo, self._score_inline([texts[i] for i in todo], sub)):
                results[i] = v
        return results

    def _run_workers(self, texts: list[str], columns: dict, results: list) -> None:
        """Score each sample in a worker; fill ``results``; raise _NoWorkers if none can run."""
        n = len(texts)
        if self._fn_bytes is None:
            try:
                self._fn_bytes = pickle.dumps(self.fn)
            except Exception as e:  # noqa: BLE001
                raise _NoWorkers(f"reward not picklable: {e}") from e
        try:
            while len(self._pool) < self.workers:
                self._pool.append(self._start_worker())
        except Exception as e:  # noqa: BLE001  (no processes left, no python executable)
            raise _NoWorkers(f"{type(e).__name__}: {e}") from e

        keys = [k for k, v in columns.items()
                if k not in TRL_OBJECTS and isinstance(v, (list, tuple)) and len(v) == n]
        rows = [{k: columns[k][i] for k in keys} for i in range(n)]
        pending = collections.deque(range(n))
        busy: dict[_Worker, tuple[int, float]] = {}  # worker -> (sample, deadline)
        while pending or busy:
            for w in list(self._pool):
                if pending and w.ready and w not in busy:
                    i = pending.popleft()
                    try:
                        w.conn.send((i, texts[i], rows[i]))
                    except (OSError, ValueError):  # the worker died while idle
                        pending.appendleft(i)
                        self._restart(w)
                        continue
                    except Exception as e:  # noqa: BLE001  (a column that does not pickle)
                        results[i] = self._fallback(i, f"cannot send sample: {e}")
                        continue
                    busy[w] = (i, time.monotonic() + self.timeout_s)
            waiting = [w for w in self._pool if w in busy or not w.ready]
            if not waiting:
                continue
            deadlines = [busy[w][1] if w in busy else w.started + STARTUP_TIMEOUT_S for w in waiting]
            ready = wait([w.conn for w in waiting], timeout=max(0.0, min(deadlines) - time.monotonic()))
            for w in waiting:
                if w.conn not in ready:
                    continue
                try:
                    msg = w.conn.recv()
                except (EOFError, OSError):  # the worker died (segfault, OOM kill, os._exit)
                    if w not in busy:
                        raise _NoWorkers("a worker died while starting") from None
                    i, _ = busy.pop(w)
                    results[i] = self._fallback(i, "worker process died")
                    self._restart(w)
                    continue
                if not w.ready:
                    if msg[0] != "ready":
                        raise _NoWorkers(str(msg[1]))
                    w.ready = True
                    continue
                i, status, value = msg
                busy.pop(w, None)
                results[i] = value if status == "ok" else self._fallback(i, value)
            now = time.monotonic()
            for w in list(self._pool):
                if w in busy and now >= busy[w][1]:
                    i, _ = busy.pop(w)
                    self._event("timeouts", f"sample {i} ran past {self.timeout_s:g}s")
                    results[i] = self._failure()
                    self._restart(w)
                elif not w.ready and w not in busy and now >= w.started + STARTUP_TIMEOUT_S:
                    raise _NoWorkers("a worker did not start in time")

    def close(self) -> None:
        """Stop the worker processes (they also end with the trainer)."""
        pool, self._pool = self._pool, []
        for w in pool:
            w.stop(kill=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001  (interpreter shutdown)
            pass

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_lock=None, _pool=[], _fn_bytes=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"guard({self.__name__}, timeout_s={self.timeout_s:g}, on_error={self.on_error})"


def guard(fn: Callable[..., list], *, timeout_s: float = DEFAULT_TIMEOUT_S,
          on_error: float | str | None = FROM_REWARD,
          max_chars: int = DEFAULT_MAX_CHARS, isolate: bool | None = None,
          workers: int = 1) -> GuardedReward:
    """Wrap a reward so that no completion can stop training (see the module docstring).

    ``timeout_s`` is per sample and applies to rewards run in workers (``isolate=True``, or
    None to decide per batch: ``fn.may_hang`` or a slow verifier kind in the ``verifier``
    column). ``on_error`` is the value an erroring or timed-out sample gets: by default the
    reward's declared ``failure_score`` (0.0 for one that declares none), else a number,
    ``"batch_min"`` (the batch's lowest score) or None (left out of the sum; only where being
    left out is no better than the worst wrong score). ``workers`` processes score in parallel.
    """
    return GuardedReward(fn, timeout_s=timeout_s, on_error=on_error, max_chars=max_chars,
                         isolate=isolate, workers=workers)
