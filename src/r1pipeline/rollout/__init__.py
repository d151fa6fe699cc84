"""Generation engines behind one interface (``base.RolloutEngine``, ``base.make_engine``).

``hf``: Hugging Face generate (``hf.py``); ``vllm``: vLLM in a child process (``vllm_engine.py``,
optional); ``trl_hook.py`` plugs either into TRL's GRPO trainer. Importing this package loads
neither torch nor vLLM.
"""
