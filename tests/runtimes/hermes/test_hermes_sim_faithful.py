"""The simulator against its oracle: the same runs on corral.sim.hermes and on real Hermes 0.19.0.

Both are driven by the recorder (``tests/fixtures/hermes/record.py``) with the same prompts; the
sequence of event kinds (runs of ``message.delta`` collapsed), each event's field names, the final
run status and the wire-level details an adapter relies on must match the traces recorded from
the real server, and the live real server when it can be installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.hermes.record import SCENARIOS, capture
from tests.plugins.hermes import API_KEY

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "hermes"


def shape(frames: list[dict[str, Any]]) -> list[tuple[str, frozenset[str]]]:
    """Event kinds and their field names, with each run of deltas collapsed into one."""
    out: list[tuple[str, frozenset[str]]] = []
    for frame in frames:
        if "status" in frame and "event" not in frame:
            status = frame["status"]
            out.append((f"status:{status['status']}", frozenset(status)))
            continue
        kind = frame["event"]
        if kind == "message.delta" and out and out[-1][0] == kind:
            continue
        out.append((kind, frozenset(frame)))
    return out


def recorded(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_simulator_matches_the_recorded_real_trace(hermes_sim_url: str, name: str) -> None:
    sim = capture(hermes_sim_url, API_KEY, SCENARIOS[name])
    assert shape(sim) == shape(recorded(name))
    final = [f["output"] for f in sim if f.get("event") == "run.completed"]
    assert final == [f["output"] for f in recorded(name) if f.get("event") == "run.completed"]


@pytest.mark.parametrize("name", ["text", "approval_once"])
def test_simulator_matches_the_live_real_server(
    hermes_sim_url: str, real_hermes_url: str, name: str
) -> None:
    real = capture(real_hermes_url, API_KEY, SCENARIOS[name])
    assert shape(capture(hermes_sim_url, API_KEY, SCENARIOS[name])) == shape(real)


@pytest.mark.parametrize(
    "path", ["/v1/runs/run_nope", "/v1/runs/run_nope/events", "/v1/capabilities"]
)
def test_error_envelopes_match(hermes_sim_url: str, real_hermes_url: str, path: str) -> None:
    for key in (API_KEY, "wrong-key-0000000000000"):
        answers = [
            httpx.get(base + path, headers={"Authorization": f"Bearer {key}"}, timeout=10)
            for base in (hermes_sim_url, real_hermes_url)
        ]
        sim, real = answers
        assert sim.status_code == real.status_code
        if real.status_code >= 400:
            assert sim.json()["error"].get("code") == real.json()["error"].get("code")


def test_a_run_stream_has_one_reader(hermes_sim_url: str) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=hermes_sim_url, headers=headers, timeout=30) as http:
        started = http.post("/v1/runs", json={"input": "hello there"})
        assert started.status_code == 202 and started.json()["status"] == "started"
        run_id = started.json()["run_id"]
        assert run_id.startswith("run_") and len(run_id) == 36
        with http.stream("GET", f"/v1/runs/{run_id}/events") as response:
            lines = list(response.iter_lines())
        assert lines[-2:] == [": stream closed", ""] or lines[-1] == ": stream closed"
        assert http.get(f"/v1/runs/{run_id}/events").status_code == 404
        assert (
            http.post(f"/v1/runs/{run_id}/approval", json={"choice": "once"}).json()["error"][
                "code"
            ]
            == "approval_not_active"
        )
        assert http.post("/v1/runs", json={}).json()["error"]["message"] == "Missing 'input' field"
