import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../harness"))

from monocri_harness import Daemon  # noqa: E402


@pytest.fixture(scope="session")
def daemon():
    """One daemon for the whole suite: what it holds at the end is what the suite left."""
    d = Daemon().start()
    yield d
    code = d.stop()
    assert code == 0, f"monocri exited with {code}:\n{d.log()}"
