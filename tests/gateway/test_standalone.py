"""``corral gateway --workers 2``: its own processes on the server's database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from corral.sim.processes import die_with_parent, free_port
from tests.gateway.conftest import Upstream, configure
from tests.support.corral import corral_settings, ok, running_corral
from tests.support.databases import sqlite_url


async def _healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            if proc.poll() is not None:
                pytest.fail(f"corral gateway exited: {log.read_text()[-2000:]}")  # noqa: ASYNC240
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    pytest.fail(f"corral gateway did not start: {log.read_text()[-2000:]}")  # noqa: ASYNC240


async def test_workers_serve_calls_and_share_the_database(tmp_path: Path, llm: Upstream) -> None:
    settings = corral_settings(sqlite_url(tmp_path), tmp_path)
    async with running_corral(settings) as corral:
        await configure(corral, llm.url)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
        env.update(CORRAL_DATABASE_URL=settings.database_url, CORRAL_KEY_FILE=str(settings.key_file),
                   CORRAL_MASTER_KEY=settings.master_key or "", CORRAL_LOG_FORMAT="text")  # fmt: skip
        log = tmp_path / "gateway.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(  # noqa: ASYNC220
                [str(Path(sys.executable).parent / "corral"), "gateway", "--port", str(port),
                 "--workers", "2"],
                env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            await _healthy(url, proc, log)
            async with corral.admin() as admin:
                key = await ok(await admin.post("/v1/keys", json={"name": "w"}), 201)
            client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key["key"], max_retries=0)
            replies = await asyncio.gather(*(
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"n {i}"}])
                for i in range(20)))  # fmt: skip
            assert {r.choices[0].message.content for r in replies} == {
                f"Echo: n {i}" for i in range(20)
            }
            # A revocation on the server reaches every worker within its epoch check.
            async with corral.admin() as admin:
                await ok(await admin.post(f"/v1/keys/{key['id']}/revoke"))
            await asyncio.sleep(1.0)
            for _ in range(4):
                with pytest.raises(openai.PermissionDeniedError):
                    await client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        # Records written by the workers (flushed at shutdown) are the server's usage.
        async with corral.admin() as admin:
            usage = await ok(await admin.get("/v1/usage", params={"group_by": "outcome"}))
        by = {r["outcome"]: r["calls"] for r in usage["data"]}
        assert by == {"ok": 20, "refused": 4}
