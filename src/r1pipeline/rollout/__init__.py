"""Generation engines behind one interface (``base.RolloutEngine``, ``base.make_engine``).

``hf``: Hugging Face generate (``hf.py``); ``vllm``: vLLM in a child process (``vllm_engine.py``,
optional); ``trl_hook.py`` plugs either into TRL's GRPO trainer; ``trl_vllm.py`` gives the
settings of TRL's own vLLM modes (a generation server, or vLLM colocated with training) for runs
on several GPUs. Importing this package loads neither torch nor vLLM.
"""
