import pytest

from tests.fixtures import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data():
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA
