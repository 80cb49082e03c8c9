"""Run by the anthropic 1.17 cache venv (``python sdk_script_117.py URL KEY``): one turn through
the older SDK, unmodified, printing one JSON line of what it saw. Standalone on purpose: it
imports nothing from Corral, only the SDK it is checking."""

from __future__ import annotations

import json
import sys

import anthropic


def main(url: str, key: str) -> None:
    client = anthropic.Anthropic(api_key=key, base_url=url, max_retries=0, timeout=30)
    beta = client.beta
    agent = beta.agents.create(name="sdk-117", model="claude-sonnet-4-5")
    env = beta.environments.create(name="sdk-117-env")
    session = beta.sessions.create(agent=agent.id, environment_id=env.id, title="t")
    seen = []
    with beta.sessions.events.stream(session.id) as stream:
        beta.sessions.events.send(
            session.id,
            events=[{"type": "user.message", "content": [{"type": "text", "text": "hi there"}]}],
        )
        for event in stream:
            seen.append(event.type)
            if event.type == "session.status_idle":
                break
    listed = [e.type for e in beta.sessions.events.list(session.id, limit=2)]
    texts = [
        getattr(block, "text", "")
        for e in beta.sessions.events.list(session.id)
        if e.type == "agent.message"
        for block in e.content
    ]
    try:
        beta.sessions.retrieve("sesn_missing")
        missing = "no error"
    except anthropic.NotFoundError as exc:
        missing = exc.response.json()["error"]["type"]
    try:
        anthropic.Anthropic(api_key="wrong", base_url=url, max_retries=0).beta.agents.list()
        wrong = "no error"
    except anthropic.AuthenticationError as exc:
        wrong = exc.response.json()["error"]["type"]
    out = {
        "version": anthropic.__version__,
        "stream": seen,
        "listed": listed,
        "texts": texts,
        "status": beta.sessions.retrieve(session.id).status,
        "missing": missing,
        "wrong_key": wrong,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
