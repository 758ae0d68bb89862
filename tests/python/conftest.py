"""pytest fixtures for the Kinesin end-to-end suites.

Fixtures
--------
server        one server per test module (fresh temp data dir, started with --no-throttle),
              or the external server given by KINESIN_TEST_ENDPOINT
kinesis       boto3 client for ``server`` (client-side validation on)
kinesis_raw   boto3 client for ``server`` with client-side validation off, so invalid
              input reaches the server and its ValidationException can be checked
make_stream   factory: create a uniquely named stream, wait until ACTIVE, return its name
server_factory  factory for per-test servers with custom flags (persistence, limits);
              such tests are skipped when KINESIN_TEST_ENDPOINT is set (we cannot restart
              or reconfigure a server we did not start)

Marker
------
@pytest.mark.aws_behaviour("why")   the test asserts real-AWS behaviour (per
              shared/reference/kinesis-api.md) that a peer emulator (kinesalite,
              kinesis-mock) is known to get wrong. Purely documentary: the test still runs
              and still fails on a peer. Deselect with ``-m "not aws_behaviour"``.
"""

from __future__ import annotations

import pytest

from kinesin_harness import (
    EXTERNAL_ENDPOINT,
    MODULE_SERVER_ARGS,
    ExternalServer,
    KinesinServer,
    make_client,
    unique_name,
    wait_active,
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "aws_behaviour(reason): asserts real AWS behaviour a peer emulator is known to differ on",
    )


def pytest_report_header(config):
    if EXTERNAL_ENDPOINT:
        return f"kinesin: using external server {EXTERNAL_ENDPOINT}"
    from kinesin_harness import kinesin_bin

    return f"kinesin: spawning {kinesin_bin()}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of the server log to failing tests."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("setup", "call"):
        srv = item.funcargs.get("server") if hasattr(item, "funcargs") else None
        if srv is not None and not srv.external:
            rep.sections.append(("kinesin server log (tail)", srv.log_tail(30)))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if EXTERNAL_ENDPOINT:
        yield ExternalServer(EXTERNAL_ENDPOINT)
        return
    base = tmp_path_factory.mktemp("kinesin")
    # Functional suites run without per-shard throughput limits so their timing cannot trip the
    # (realistic, default-on) throttles; test_throttling.py covers the limits on a default server.
    srv = KinesinServer(base / "data", MODULE_SERVER_ARGS, log_dir=base).start()
    yield srv
    code = srv.stop()
    assert code == 0, f"kinesin exited with {code} on SIGTERM:\n{srv.log_tail()}"


@pytest.fixture(scope="module")
def kinesis(server):
    return make_client(server.endpoint)


@pytest.fixture(scope="module")
def kinesis_raw(server):
    return make_client(server.endpoint, validate=False, max_attempts=1)


@pytest.fixture(scope="module")
def endpoint(server):
    return server.endpoint


@pytest.fixture
def make_stream(kinesis):
    """Create a stream (unique name) and wait for ACTIVE. Streams are deleted afterwards
    (best effort) so a shared external server does not fill up."""
    created: list[str] = []

    def _make(shards: int | None = 1, *, prefix: str = "t", on_demand: bool = False, tags: dict | None = None,
              name: str | None = None) -> str:
        name = name or unique_name(prefix)
        kwargs: dict = {"StreamName": name}
        if on_demand:
            kwargs["StreamModeDetails"] = {"StreamMode": "ON_DEMAND"}
        elif shards is not None:
            kwargs["ShardCount"] = shards
        if tags:
            kwargs["Tags"] = tags
        kinesis.create_stream(**kwargs)
        created.append(name)
        wait_active(kinesis, name)
        return name

    yield _make
    for name in created:
        try:
            kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        except Exception:
            pass


@pytest.fixture
def server_factory(tmp_path):
    """Start dedicated servers (custom flags / restart / crash tests)."""
    if EXTERNAL_ENDPOINT:
        pytest.skip("needs a kinesin process started by the suite (KINESIN_TEST_ENDPOINT is set)")
    servers: list[KinesinServer] = []

    def _start(*extra_args: str, data_dir=None) -> KinesinServer:
        d = data_dir or tmp_path / f"data{len(servers)}"
        srv = KinesinServer(d, extra_args, log_dir=tmp_path).start()
        servers.append(srv)
        return srv

    yield _start
    for srv in servers:
        try:
            srv.kill()
        except Exception:
            pass
