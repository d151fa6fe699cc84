"""Task sources: prompts with checkable reference answers (see ``registry``)."""

from r1pipeline.tasks.registry import SPLITS, TaskSource, build, names, register, source_class, split_of

__all__ = ["SPLITS", "TaskSource", "build", "names", "register", "source_class", "split_of"]
