import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../harness"))

from monocri_harness import Daemon  # noqa: E402


@pytest.fixture
def daemon(tmp_path):
    """A daemon of its own for each test, stopped with SIGTERM: it must exit 0."""
    d = Daemon(str(tmp_path)).start()
    yield d
    code = d.stop()
    assert code == 0, f"monocri exited with {code}:\n{d.log()}"
