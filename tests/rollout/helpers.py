"""Small tools for the engine tests."""

from __future__ import annotations


def force_token(model, token_id: int, logit: float):
    """Add ``logit`` to one token's logit at every position (a forward hook on the LM head)."""
    def hook(module, args, out):
        out = out.clone()
        out[..., token_id] += logit
        return out

    return model.lm_head.register_forward_hook(hook)


def token_ids(groups) -> list[list[tuple[int, ...]]]:
    return [[c.token_ids for c in g] for g in groups]
