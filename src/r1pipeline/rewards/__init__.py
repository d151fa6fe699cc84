"""Reward functions: small pure functions behind one registry (see ``registry``)."""

from r1pipeline.rewards.registry import build, check_params, entry, names, param_problem, register

__all__ = ["build", "check_params", "entry", "names", "param_problem", "register"]
