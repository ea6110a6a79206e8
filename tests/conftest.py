"""Fixtures shared by every room (helpers live in ``tests/helpers``; ``pythonpath = tests``)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread_determinism():
    torch.manual_seed(1234)
    yield
