"""Imports every built-in task source so that their @register decorators run."""

from r1pipeline.tasks import tiny_world  # noqa: F401
