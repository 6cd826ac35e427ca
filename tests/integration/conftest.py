from __future__ import annotations

import pytest

from tests.integration.servers import Servers


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    """A real action server + Rasa server (REST), shared by the integration tests of a session."""
    running = Servers(tmp_path_factory.mktemp("servers")).start()
    yield running
    running.stop()


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
