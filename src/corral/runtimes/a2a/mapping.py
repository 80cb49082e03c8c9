"""A2A stream items and task snapshots -> normalized drafts. Pure: no I/O, no clock, never raises.

Both protocol versions are read directly: 0.3 objects carry ``kind`` and lower-case states
(``input-required``), 1.0 objects are ``StreamResponse`` members (``task`` / ``statusUpdate`` /
``artifactUpdate`` / ``message``) with ``TASK_STATE_*`` and ``ROLE_*`` enums; :func:`classify`
turns either into one ``NativeEvent`` type, and the handlers only read fields both share.

Native ids come from what the A2A server keeps in the task (artifact ids, message ids, the task
id), never from arrival order, so a live item and the same thing rebuilt from ``tasks/get``
dedupe: a finished artifact is ``artifact:{artifactId}``; an agent message ``msg:{messageId}``;
the question of an ``input-required`` status ``input:{taskId}:{messageId}``; the error of a failed
task ``error:{taskId}``. A streamed chunk is ``delta:{artifactId}:{offset}``, the offset being the
artifact's live text length before it. Deltas are best effort (``tasks/get`` keeps no chunks);
the finished artifact's ``message.completed`` carries the whole text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.domain.events import EventDraft, EventType, StopReason, turn_end_native_id
from corral.runtimes.base import NativeEvent

TASK, STATUS, ARTIFACT, MESSAGE = "task", "status-update", "artifact-update", "message"
#: Synthetic event from ``history()`` when the task of the open turn cannot be found.
GAP = "corral.a2a.gap"
#: Marker the adapter adds to items of a task whose stream was re-attached after a drop.
RESUMED = "corralResumed"

TERMINAL = frozenset({"completed", "canceled", "failed", "rejected"})
INTERRUPTED = frozenset({"input-required", "auth-required"})
_V1_KEYS = {"task": TASK, "statusUpdate": STATUS, "artifactUpdate": ARTIFACT, "message": MESSAGE}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def classify(result: Any) -> tuple[str, dict[str, Any]] | None:
    """A JSON-RPC ``result`` (stream item or send answer) as (event type, object), if known."""
    body = _dict(result)
    kind = body.get("kind")
    if kind in (TASK, STATUS, ARTIFACT, MESSAGE):
        return str(kind), body
    for key, name in _V1_KEYS.items():
        if isinstance(body.get(key), dict):
            return name, body[key]
    if isinstance(body.get("id"), str) and isinstance(body.get("status"), dict):
        return TASK, body  # a 1.0 GetTask answer is a bare Task
    return None


def state_of(status: Any) -> str:
    """``TASK_STATE_INPUT_REQUIRED`` and ``input-required`` both as ``input-required``."""
    raw = str(_dict(status).get("state") or "")
    if raw.startswith("TASK_STATE_"):
        raw = raw[len("TASK_STATE_") :].lower().replace("_", "-")
    return raw


def role_of(message: dict[str, Any]) -> str:
    return str(message.get("role") or "").removeprefix("ROLE_").lower()


def parts_text(parts: Any) -> str:
    """The text of a parts list (0.3 ``{kind: text, text}`` or 1.0 ``{text}``); other parts skip."""
    return "".join(
        str(p["text"])
        for p in _list(parts)
        if isinstance(p, dict) and isinstance(p.get("text"), str)
    )


def task_id_of(kind: str, obj: dict[str, Any]) -> str | None:
    value = obj.get("id") if kind == TASK else obj.get("taskId")
    return value if isinstance(value, str) else None


@dataclass
class A2AMapper:
    turn_id: str | None = None
    #: Text seen so far per artifact id (its length is the next chunk's offset).
    texts: dict[str, str] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)  # artifact ids already reported whole
    done_tasks: set[str] = field(default_factory=set)  # tasks whose end closed a turn
    last_state: str = ""

    def begin_turn(self, turn_id: str) -> None:
        self.turn_id = turn_id
        self.last_state = ""

    def map(self, event: NativeEvent) -> list[EventDraft]:
        try:
            payload = _dict(event.payload)
            if event.type == TASK:
                return self._task(payload, event.type)
            if event.type == STATUS:
                return self._status(payload, event.type)
            if event.type == ARTIFACT:
                return self._artifact(payload, event.type)
            if event.type == MESSAGE:
                drafts = self._message(payload, event.type)
                return drafts + self._end(StopReason.END_TURN, None, event.type)
            if event.type == GAP:
                return self._gap(payload, event.type)
        except (TypeError, ValueError, AttributeError):  # odd input never breaks the pump
            return []
        return []

    def finish_turn(self) -> list[EventDraft]:
        reason = {
            "canceled": StopReason.CANCELLED,
            "failed": StopReason.ERROR,
            "rejected": StopReason.ERROR,
        }.get(self.last_state, StopReason.END_TURN)
        return self._end(reason, None, "corral.reconciled")

    # -- items ------------------------------------------------------------------------------

    def _task(self, task: dict[str, Any], kind: str) -> list[EventDraft]:
        task_id = task.get("id")
        state = state_of(task.get("status"))
        drafts: list[EventDraft] = []
        for message in _list(task.get("history")):
            drafts += self._message(_dict(message), kind)
        artifacts = [_dict(a) for a in _list(task.get("artifacts"))]
        for index, artifact in enumerate(artifacts):
            artifact_id = artifact.get("artifactId")
            if not isinstance(artifact_id, str):
                continue
            text = parts_text(artifact.get("parts"))
            settled = state in TERMINAL or state in INTERRUPTED
            if settled or artifact_id not in self.texts:
                # A settled task's artifacts are whole and win. A running task's snapshot may
                # be ahead of the live stream (chunks still in flight are already in it), so
                # it never moves the live text: those chunks would be counted twice.
                self.texts[artifact_id] = text
            # The newest artifact of a running task may still grow; the others are whole.
            if settled or index < len(artifacts) - 1:
                drafts += self._artifact_done(artifact_id, kind)
        status = {"taskId": task_id, "status": task.get("status")}
        return drafts + self._status(status, kind)

    def _status(self, update: dict[str, Any], kind: str) -> list[EventDraft]:
        status = _dict(update.get("status"))
        state = state_of(status)
        task_id = str(update.get("taskId") or "")
        message = _dict(status.get("message"))
        drafts: list[EventDraft] = []
        if state and task_id not in self.done_tasks:
            self.last_state = state
        if state in ("failed", "rejected"):
            text = parts_text(message.get("parts")) or f"the A2A task was {state}"
            data = {
                "code": f"task_{state}",
                "message": text,
                "retryable": False,
                "fatal": False,
                "task_id": task_id,
            }
            drafts.append(EventDraft(EventType.ERROR, data, f"error:{task_id}", kind))
        elif message:
            drafts += self._message(message, kind)
        if state in INTERRUPTED:
            message_id = message.get("messageId") or status.get("timestamp") or state
            data = {
                "request_id": task_id,
                "kind": "question" if state == "input-required" else "auth",
                "prompt": parts_text(message.get("parts")) or None,
            }
            native_id = f"input:{task_id}:{message_id}"
            drafts.append(EventDraft(EventType.INPUT_REQUESTED, data, native_id, kind))
        if state in TERMINAL:
            for artifact_id in list(self.texts):
                drafts += self._artifact_done(artifact_id, kind)
            reason = {
                "completed": StopReason.END_TURN,
                "canceled": StopReason.CANCELLED,
            }.get(state, StopReason.ERROR)
            drafts += self._end(reason, task_id, kind)
        return drafts

    def _artifact(self, update: dict[str, Any], kind: str) -> list[EventDraft]:
        artifact = _dict(update.get("artifact"))
        artifact_id = artifact.get("artifactId")
        if not isinstance(artifact_id, str):
            return []
        text = parts_text(artifact.get("parts"))
        before = self.texts.get(artifact_id, "") if update.get("append") else ""
        self.texts[artifact_id] = before + text
        drafts: list[EventDraft] = []
        if text:
            data = {
                "message_id": artifact_id,
                "role": "assistant",
                "channel": "text",
                "text": text,
            }
            native_id = f"delta:{artifact_id}:{len(before)}"
            drafts.append(EventDraft(EventType.MESSAGE_DELTA, data, native_id, kind))
        if update.get("lastChunk") and not update.get(RESUMED):
            # After a resubscribe the live text may miss chunks that went by unseen; the whole
            # artifact then comes from the task snapshot the adapter fetches at the task's end.
            drafts += self._artifact_done(artifact_id, kind)
        return drafts

    def _artifact_done(self, artifact_id: str, kind: str) -> list[EventDraft]:
        if artifact_id in self.completed:
            return []
        self.completed.add(artifact_id)
        data = {
            "message_id": artifact_id,
            "role": "assistant",
            "channel": "text",
            "content": [{"type": "text", "text": self.texts.get(artifact_id, "")}],
        }
        return [EventDraft(EventType.MESSAGE_COMPLETED, data, f"artifact:{artifact_id}", kind)]

    def _message(self, message: dict[str, Any], kind: str) -> list[EventDraft]:
        message_id = message.get("messageId")
        if role_of(message) != "agent" or not isinstance(message_id, str):
            return []
        data = {
            "message_id": message_id,
            "role": "assistant",
            "channel": "text",
            "content": [{"type": "text", "text": parts_text(message.get("parts"))}],
        }
        return [EventDraft(EventType.MESSAGE_COMPLETED, data, f"msg:{message_id}", kind)]

    def _end(self, reason: StopReason, task_id: str | None, kind: str) -> list[EventDraft]:
        # A task that already closed a turn (a late frame, a replayed snapshot) closes no other.
        if self.turn_id is None or (task_id is not None and task_id in self.done_tasks):
            return []
        if task_id is not None:
            self.done_tasks.add(task_id)
        data = {"turn_id": self.turn_id, "stop_reason": reason.value}
        draft = EventDraft(EventType.TURN_COMPLETED, data, turn_end_native_id(self.turn_id), kind)
        self.turn_id = None
        return [draft]

    def _gap(self, payload: dict[str, Any], kind: str) -> list[EventDraft]:
        if self.turn_id is None:
            return []
        reason = str(payload.get("reason") or "the A2A task of this turn cannot be found")
        data = {"reason": reason, "native_session_id": payload.get("context_id")}
        return [EventDraft(EventType.STREAM_GAP, data, f"gap:{self.turn_id}", kind)]
