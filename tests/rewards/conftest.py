from __future__ import annotations

import pytest

from tests.rewards.helpers import save_tiny_reward_model


@pytest.fixture(scope="session")
def tiny_rm_path(tmp_path_factory):
    return save_tiny_reward_model(tmp_path_factory.mktemp("tiny_rm"))
