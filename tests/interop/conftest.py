import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../harness"))

from monocri_harness import SANITIZED, Daemon  # noqa: E402

# The daemon's resident set once the whole suite has run against it (and freed memory has gone
# back to the kernel): the memory budget a node operator can count on.
RSS_CEILING_AFTER_SUITE_KIB = 12 * 1024


@pytest.fixture(scope="session")
def daemon():
    """One daemon for the whole suite: what it holds at the end is what the suite left."""
    d = Daemon().start()
    yield d
    if not SANITIZED:
        rss = d.settle_rss(RSS_CEILING_AFTER_SUITE_KIB)
        assert rss < RSS_CEILING_AFTER_SUITE_KIB, f"VmRSS {rss} KiB after the interop suite"
    code = d.stop()
    assert code == 0, f"monocri exited with {code}:\n{d.log()}"
