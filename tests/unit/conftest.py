"""Shared settings for the core's unit tests."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def single_thread():
    """The unit tests run tiny models: OpenMP threads only add contention (a call can take
    seconds instead of milliseconds on a busy 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
