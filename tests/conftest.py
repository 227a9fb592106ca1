import atexit
import os
import shutil
import tempfile

import pytest

from tests.fixtures import SHARED_DATA

# Caches (tracks, audio analyses) go to a throwaway place, for this process and the CLI runs
# it starts: tests never read or fill a user's cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="dubplate-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)


@pytest.fixture(scope="session")
def shared_data():
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA
