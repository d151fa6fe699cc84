"""The canned-rollout folder holds a ``sitecustomize`` that patches the GRPO stage on import:
only the subprocesses that put it on their path may import it."""

collect_ignore = ["canned_rollout"]
