"""The attacker's view: real servers on 127.0.0.1, requests an outsider can send."""
from __future__ import annotations

import pytest

from tests.integration.servers import MODEL, Servers


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/security" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def start_servers(workdir, **env) -> Servers:
    if not MODEL.exists():
        pytest.skip(f"no trained Rasa model at {MODEL} (run `make train`)")
    return Servers(workdir, env=env).start()


@pytest.fixture(scope="session")
def target(tmp_path_factory):
    """One action server + Rasa server for the attacks that do not break them."""
    running = start_servers(tmp_path_factory.mktemp("target"))
    yield running
    running.stop()
