"""A fixture that runs a test module on one thread.

The identification tests use small matrices and scikit-learn's k-means; on a shared 2-core
machine, two threads per process oversubscribe the cores and make them many times slower.
Import ``one_thread`` into a test module to apply it there.
"""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
