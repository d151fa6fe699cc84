"""Imports every built-in task source so that their @register decorators run."""

from r1pipeline.tasks import tiny_world  # noqa: F401
from r1pipeline.tasks import reasoning_gym  # noqa: F401
from r1pipeline.tasks import files  # noqa: F401
from r1pipeline.tasks import tiny_general  # noqa: F401
from r1pipeline.tasks import mix  # noqa: F401
