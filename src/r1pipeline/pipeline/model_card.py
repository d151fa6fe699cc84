"""Model cards: a Hugging Face ``README.md`` in every ``model/`` folder a stage writes.

A card says which stage of which recipe made the model and from what: its YAML header (read by
``huggingface_hub.ModelCard``) holds the library, tags, the Hub base model where the lineage
starts from one, and the evaluation results as ``model-index``; its body names the stage, its
kind, the recipe step it implements, its lineage back to the base model (the spec's ``init``
chain, with each step's data and reward models), its settings (what differs from the defaults,
as the spec would say it) and, once an ``evaluate`` stage has scored it, its numbers.

Built from the spec and the run directory alone (manifests, summaries), as the report is. The
runner writes it where a stage is finalised (``runner.run_stage``: after the summary, before the
manifest says ``done``), and an evaluate stage rewrites the cards of the models it scored; the
numbers of an evaluation count only while its manifest names the model's current hash. A card
is nobody's input: no hash covers it. Load one with
``huggingface_hub.ModelCard.load(run / stage / "model" / "README.md")``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from r1pipeline.pipeline.report import EVAL_COLUMNS, _ci, _fmt
from r1pipeline.rundir import MANIFEST, SUMMARY, read_json, write_text_atomic

CARD = "README.md"

# The paper's stage names (README's stage table): (short label, what the step is).
RECIPE_STEPS: dict[str, tuple[str, str]] = {
    "base": ("base model", "the base model the recipe starts from (the paper: DeepSeek-V3-Base)"),
    "r1_zero": ("R1-Zero", "DeepSeek-R1-Zero: GRPO from the base model with rule rewards only"),
    "cold_start": ("cold-start data", "readable long chains of thought from R1-Zero and curated examples"),
    "cold_start_sft": ("cold-start SFT", "DeepSeek-R1 step 1: the base model fine-tuned on the cold-start data"),
    "reasoning_rl": ("reasoning RL", "DeepSeek-R1 step 2: reasoning-oriented GRPO with accuracy, format and "
                                     "language-consistency rewards"),
    "rejection_sampling": ("rejection sampling", "DeepSeek-R1 step 3's data: correct, clean samples of the "
                                                 "reasoning-RL model plus non-reasoning data"),
    "sft": ("rejection-sampling SFT", "DeepSeek-R1 step 3: the base model fine-tuned on the rejection-sampled "
                                      "reasoning and non-reasoning data"),
    "reward_helpful": ("helpfulness reward model", "the helpfulness reward model of the RL for all scenarios"),
    "reward_harmless": ("harmlessness reward model", "the harmlessness reward model of the RL for all scenarios"),
    "all_scenario_rl": ("RL for all scenarios", "DeepSeek-R1 step 4: rule rewards for reasoning prompts, reward "
                                                "models for general prompts"),
    "student_base": ("student base model", "the smaller base model of the distillation comparison"),
    "distill": ("distillation", "a smaller model fine-tuned on the teacher's (DeepSeek-R1's) samples, no RL"),
    "student_zero": ("R1-Zero on the student", "the paper's comparison with distillation: the smaller model "
                                               "trained by the R1-Zero recipe"),
}
KIND_STEPS: dict[str, tuple[str, str]] = {  # a stage the paper does not name
    "pretrain": ("base model", "a base model pretrained from scratch"),
    "grpo": ("GRPO", "reinforcement learning with GRPO"),
    "sft": ("SFT", "supervised fine-tuning"),
    "reward_model": ("reward model", "a Bradley-Terry reward model on preference pairs"),
    "sample": ("sampled data", "data sampled from models, verified and filtered"),
}
# Known model names (models/catalog.py) that are Hub repositories: a card's ``base_model``.
HUB_IDS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}
TRAINED_BY_TRL = {"grpo", "sft", "reward_model"}


def recipe_step(stage) -> tuple[str, str]:
    """(short label, description) of the recipe step a stage implements: by the paper's name,
    else by its kind."""
    return RECIPE_STEPS.get(stage.name) or KIND_STEPS.get(stage.kind, (stage.kind, stage.kind))


def init_chain(spec, name: str) -> tuple[list[str], str | None]:
    """(the stages from ``name`` back along ``init``, the model reference the chain starts from:
    None when its first stage trained from scratch)."""
    chain, ref = [], None
    while name in spec.stage_names and name not in chain:
        chain.append(name)
        ref = getattr(spec.stage(name), "init", None)
        if ref is None:
            return chain, None
        name = ref
    return chain, ref


def task_text(task: dict[str, Any] | None) -> str:
    """A task block in a few words: ``tiny_product (n_digits=3)``, mixes by their parts.

    >>> task_text({"source": "mix", "parts": [{"source": "tiny_product", "weight": 0.8}, {"source": "tiny_general"}]})
    'mix of tiny_product (weight=0.8), tiny_general'
    """
    if not task:
        return ""
    if task.get("source") == "mix":
        return "mix of " + ", ".join(task_text(p) for p in task.get("parts", []))
    rest = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v}"
                     for k, v in task.items() if k != "source")
    return f"{task.get('source')}" + (f" ({rest})" if rest else "")


def _input_text(spec, name: str) -> str:
    s = spec.stage(name)
    if s.makes_data:
        made_by = s.inputs(set(spec.stage_names))
        return f"data `{name}` ({s.kind}" + (f" of {', '.join(f'`{m}`' for m in made_by)})" if made_by else ")")
    init = getattr(s, "init", None)
    return (f"{'reward model' if s.kind == 'reward_model' else 'model'} `{name}` ({s.kind}"
            + (f" from `{init}`)" if init else ")"))


def reads_text(spec, stage) -> str:
    """What a stage trained on: its task, data stages and files, and the models its rewards run."""
    parts = []
    task = getattr(stage, "task", None) or getattr(getattr(stage, "pairs", None), "task", None)
    if task:
        parts.append(f"task {task_text(task)}")
    names, init = set(spec.stage_names), getattr(stage, "init", None)
    parts += [_input_text(spec, i) for i in stage.inputs(names) if i != init]
    parts += [f"file `{d}`" for d in getattr(stage, "data", None) or [] if d not in names]
    pairs_file = getattr(getattr(stage, "pairs", None), "file", None)
    if pairs_file:
        parts.append(f"pairs file `{pairs_file}`")
    return "; ".join(parts) or "-"


def settings(stage) -> dict[str, Any]:
    """The stage's config less its defaults (what the spec has to say), without name and kind."""
    data = stage.model_dump(mode="json", exclude_defaults=True)
    return {k: v for k, v in data.items() if k not in ("name", "kind")}


def evaluations(spec, run_dir: Path, name: str, finishing: str | None = None) -> list[dict[str, Any]]:
    """The scores of stage ``name`` from each evaluate stage that is done (or ``finishing``) and
    scored this very model (its manifest's input hash is the model's): ``{"stage", "k",
    "n_prompts", "sets": {set: metrics}}``."""
    own = read_json(run_dir / name / MANIFEST)
    own_hash = own.get("hash") if isinstance(own, dict) else None
    out = []
    for s in spec.order():
        if s.kind != "evaluate" or name not in getattr(s, "models", []):
            continue
        m = read_json(run_dir / s.name / MANIFEST)
        summary = read_json(run_dir / s.name / SUMMARY)
        if not (isinstance(m, dict) and isinstance(summary, dict) and own_hash is not None
                and (m.get("status") == "done" or s.name == finishing)
                and (m.get("inputs") or {}).get(name) == own_hash):
            continue
        sets = {"heldout": (summary.get("models") or {}).get(name)}
        for set_name, block in (summary.get("sets") or {}).items():
            sets[set_name] = ((block or {}).get("models") or {}).get(name)
        sets = {k: v for k, v in sets.items() if isinstance(v, dict)}
        if sets:
            sources = {k: (s.sets[k].task if k in s.sets else s.task).get("source") for k in sets}
            out.append({"stage": s.name, "k": summary.get("k"), "n_prompts": summary.get("n_prompts"),
                        "task": task_text(s.task), "sets": sets, "sources": sources})
    return out


def _card_data(spec, stage, root_ref: str | None, evals: list[dict[str, Any]]):
    from huggingface_hub import EvalResult, ModelCardData

    kind = stage.kind
    tags = ["r1pipeline", "deepseek-r1-recipe", kind] + (["trl"] if kind in TRAINED_BY_TRL else [])
    results = [EvalResult(task_type="text-generation", dataset_type=f"r1pipeline/{e['sources'][set_name]}",
                          dataset_name=f"{e['stage']}: {set_name}", metric_type=key, metric_name=key,
                          metric_value=float(metrics[key]))
               for e in evals for set_name, metrics in e["sets"].items()
               for key, _ in EVAL_COLUMNS if _number(metrics.get(key))]
    base = HUB_IDS.get(root_ref or "")
    return ModelCardData(
        library_name="transformers", tags=tags, base_model=base,
        base_model_relation="finetune" if base else None,
        pipeline_tag="text-classification" if kind == "reward_model" else "text-generation",
        model_name=f"{spec.name}/{stage.name}" if results else None, eval_results=results or None)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _lineage_section(spec, name: str) -> list[str]:
    chain, ref = init_chain(spec, name)
    if ref is None:
        root = "trained from scratch"
    else:
        root = f"`{ref}`" + (f" ([{HUB_IDS[ref]}](https://huggingface.co/{HUB_IDS[ref]}))" if ref in HUB_IDS else "")
    lines = ["## Lineage", "", " ← ".join(f"`{n}`" for n in chain) + f" ← {root}", "",
             "| stage | kind | recipe step | starts from | trained on |", "|---|---|---|---|---|"]
    for n in chain:
        s = spec.stage(n)
        init = getattr(s, "init", None)
        lines.append(f"| `{n}` | {s.kind} | {recipe_step(s)[0]} | {f'`{init}`' if init else 'scratch'} "
                     f"| {reads_text(spec, s)} |")
    return lines


def _evaluation_section(evals: list[dict[str, Any]]) -> list[str]:
    if not evals:
        return ["## Evaluation", "", "Not evaluated yet: an `evaluate` stage that names this model rewrites "
                "this card with its numbers."]
    lines = ["## Evaluation"]
    for e in evals:
        cols = [c for c in EVAL_COLUMNS if any(c[0] in m for m in e["sets"].values())]
        lines += ["", f"Stage `{e['stage']}`: {e['task']}, {e['n_prompts']} held-out prompts, k = {e['k']} "
                      "samples each (pass@1 and cons@k with 95% bootstrap intervals).", "",
                  "| set | " + " | ".join(label for _, label in cols) + " |", "|" + "---|" * (len(cols) + 1)]
        for set_name, m in e["sets"].items():
            cells = [_ci(m.get(k), m.get(f"{k}_ci")) if k in ("pass@1", "cons@k") else _fmt(m.get(k))
                     for k, _ in cols]
            lines.append(f"| {set_name} | " + " | ".join(cells) + " |")
    return lines


def card_text(spec, run_dir: Path, name: str, finishing: str | None = None) -> str:
    """The model card of stage ``name``'s model in the run ``run_dir``."""
    stage = spec.stage(name)
    _, ref = init_chain(spec, name)
    evals = evaluations(spec, run_dir, name, finishing)
    manifest = read_json(run_dir / name / MANIFEST)
    manifest = manifest if isinstance(manifest, dict) else {}
    short, step = recipe_step(stage)
    auto = "AutoModelForSequenceClassification" if stage.kind == "reward_model" else "AutoModelForCausalLM"
    body = [f"# {spec.name} / {name}", "",
            "A model made by r1pipeline (the DeepSeek-R1 training recipe as a resumable pipeline), "
            f"run `{spec.name}`" + (f": {spec.description}" if spec.description else "."), "",
            f"- **stage:** `{name}`", f"- **kind:** `{stage.kind}`", f"- **recipe step:** {short} ({step})"]
    if getattr(stage, "template", None):
        body.append(f"- **prompt template:** `{stage.template}` (`r1pipeline.tasks.templates`)")
    versions = ", ".join(f"{k} {v}" for k, v in (manifest.get("versions") or {}).items())
    body += ["", *_lineage_section(spec, name), "", "## Settings", "",
             f"What the spec sets besides the defaults; seed {manifest.get('seed', spec.stage_seed(stage))}, "
             f"stage hash `{manifest.get('hash', '?')}`" + (f"; {versions}." if versions else "."), "", "```yaml",
             yaml.safe_dump(settings(stage), sort_keys=False, allow_unicode=True).strip() or "{}", "```", "",
             *_evaluation_section(evals), "", "## Use", "", "```python",
             f"from transformers import {auto}, AutoTokenizer", "",
             f'model = {auto}.from_pretrained("path/to/{name}/model")',
             f'tokenizer = AutoTokenizer.from_pretrained("path/to/{name}/model")', "```", ""]
    data = _card_data(spec, stage, ref, evals)
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)


def write_card(spec, run_dir: Path, name: str, finishing: str | None = None) -> Path | None:
    """Write ``<run>/<name>/model/README.md``; None when the stage has no model folder."""
    model_dir = Path(run_dir) / name / "model"
    if not model_dir.is_dir():
        return None
    path = model_dir / CARD
    write_text_atomic(path, card_text(spec, Path(run_dir), name, finishing))
    return path


def write_cards(spec, stage, run_dir: Path, log=print) -> list[Path]:
    """After ``stage`` finished: its model's card, and for an evaluate stage the cards of the
    models it scored. A card that cannot be built is logged, never a failed stage."""
    names = [stage.name] + [m for m in getattr(stage, "models", []) if stage.kind == "evaluate"
                            and m in spec.stage_names]
    written = []
    for name in dict.fromkeys(names):
        try:
            path = write_card(spec, run_dir, name, finishing=stage.name)
        except Exception as e:  # noqa: BLE001  (a card is documentation: it never stops a run)
            log(f"[r1] {name}: model card not written ({type(e).__name__}: {e})")
            continue
        if path:
            written.append(path)
    return written
