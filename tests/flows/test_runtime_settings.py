"""What a command's flow runs get from :func:`speclens.flows.runtime.prefect_api` on the shared
local server: its URL, and no flow-run heartbeats (unless the environment asks for them); a
site's server (``PREFECT_API_URL``) is used as it is."""

from __future__ import annotations

from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

from speclens.flows import local_server, runtime

FAKE = "http://127.0.0.1:9/api"


def test_the_shared_local_server_runs_flows_without_heartbeats(monkeypatch):
    monkeypatch.setattr(local_server, "ensure_server", lambda: {"url": FAKE})
    for name in ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"):
        monkeypatch.delenv(name, raising=False)
    with temporary_settings(updates={PREFECT_API_URL: None}):
        assert get_current_settings().flows.heartbeat_frequency is not None  # Prefect's default
        with runtime.prefect_api() as url:
            assert url == FAKE and PREFECT_API_URL.value() == FAKE
            assert get_current_settings().flows.heartbeat_frequency is None
        assert get_current_settings().flows.heartbeat_frequency is not None


def test_heartbeats_asked_for_or_a_sites_server_keep_them(monkeypatch):
    monkeypatch.setattr(local_server, "ensure_server", lambda: {"url": FAKE})
    monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60")
    assert runtime._local_heartbeats() == {}
    monkeypatch.delenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY")
    site = "http://prefect.example:4200/api"
    with temporary_settings(updates={PREFECT_API_URL: site}):
        before = get_current_settings().flows.heartbeat_frequency
        with runtime.prefect_api() as url:
            assert url == site
            assert get_current_settings().flows.heartbeat_frequency == before


def test_the_command_freezes_the_collector_on_its_way_out(monkeypatch):
    """Whatever the command does (here: it fails), main() leaves every object frozen, so the
    interpreter's final collection does not walk them (0.7 s of each command's exit)."""
    import gc

    import pytest

    from speclens import cli

    def broken():
        raise SystemExit(2)

    monkeypatch.setattr(cli, "app", broken)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with pytest.raises(SystemExit):
        cli.main()
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
