"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1: the eval suites' scripted backend, and
the model path's tests.

    with ScriptedOpenAI({"critic": [critique, '{"broken', lambda body: {...}]}) as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="scripted")
        ...
        server.requests  # every request received, with the role it was routed to

Each role's replies are served in order. The role is read from the first line of the system
message, `You are the dexforge <role>.` A reply is a dict or pydantic model (sent as its JSON), a
string (sent as-is: malformed JSON on purpose) or a callable(request body) -> dict | str. A request
with `tools` (function calling) gets one tool call with the reply as its arguments: to the tool that
`tool_choice` forces, else to the role's answer tool (named after its schema: TaskProposal, Critique,
Decomposition, RewardDraft, Invention) when it was offered, else to the first tool; otherwise
(`response_format`, json_schema) the reply is the message content.

A tool-calling model's other moves are dicts with a reserved key:

    {"tool_calls": [{"name": "render_view", "args": {"eye": [0, 0, 1]}}, ...]}  # one or several calls
    {"tool_calls": [{"name": "measure", "args": '{"a": "cube"'}]}             # arguments sent as given
    {"content": "I think the scene is fine."}                                  # plain text, no call With
`"stream": true` the answer comes as server-sent events: content or tool-call argument deltas, a
finish chunk, a usage chunk when `stream_options.include_usage` asks for one, then `data: [DONE]`.
A role whose script is exhausted (or a request with no known role) gets HTTP 500 with an error JSON.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel

Reply = Mapping[str, Any] | BaseModel | str | Callable[[dict], Mapping[str, Any] | str]
PREFIX = "You are the dexforge "
CHUNK = 24  # characters per streamed delta


@dataclass
class Recorded:
    """One request the server received."""

    role: str | None
    """The role it was routed to (None when the system message names none)."""
    body: dict
    """The request's JSON body."""
    status: int = 200
    """The HTTP status answered."""
    headers: dict[str, str] = field(default_factory=dict)
    """The request's headers, names in lower case (`authorization` included)."""

    @property
    def messages(self) -> list[dict]:
        return self.body.get("messages", [])

    def text(self) -> str:
        """All text of all messages (tool-call arguments included), for `in` checks."""
        out = []
        for msg in self.messages:
            content = msg.get("content")
            if isinstance(content, str):
                out.append(content)
            elif isinstance(content, list):
                out += [p.get("text", "") for p in content if isinstance(p, dict)]
            out += [c["function"]["arguments"] for c in msg.get("tool_calls") or []]
        return "\n".join(out)


def image_urls(request: Recorded) -> list[str]:
    """The `image_url` URLs (data URLs for local images) of every message of a request."""
    return [
        part["image_url"]["url"]
        for msg in request.messages
        if isinstance(msg.get("content"), list)
        for part in msg["content"]
        if isinstance(part, dict) and part.get("type") == "image_url"
    ]


def role_of(body: dict) -> str | None:
    """The role named by the first line of the first system message."""
    for msg in body.get("messages", []):
        if msg.get("role") not in ("system", "developer"):
            continue
        content = msg.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        first = (content or "").strip().splitlines()[0] if (content or "").strip() else ""
        if first.startswith(PREFIX) and first.endswith("."):
            return first[len(PREFIX) : -1].strip()
        return None
    return None


def _serialise(reply: Reply, body: dict) -> str:
    if callable(reply) and not isinstance(reply, BaseModel):
        reply = reply(body)
    if isinstance(reply, BaseModel):
        return reply.model_dump_json()
    if isinstance(reply, str):
        return reply
    return json.dumps(reply)


ANSWER_TOOLS = ("TaskProposal", "Critique", "Decomposition", "RewardDraft", "Invention")
MOVES = ("tool_calls", "content")  # the reserved keys of a reply that is not an answer


def _tool_name(body: dict) -> str:
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        return choice.get("function", {}).get("name") or choice.get("name")
    names = [t["function"]["name"] for t in body["tools"]]
    return next((n for n in names if n in ANSWER_TOOLS), names[0])


def _move(text: str) -> dict | None:
    """A reply that is a tool-calling move ({"tool_calls": [...]} or {"content": ...}), else None."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not data or set(data) - set(MOVES):
        return None
    return data


class ScriptedOpenAI:
    """A real HTTP server speaking `/v1/chat/completions` and `/v1/models`, in a daemon thread."""

    def __init__(self, script: Mapping[str, Sequence[Reply]], *, model: str = "scripted") -> None:
        self.script = {role: list(replies) for role, replies in script.items()}
        self.model = model
        self.requests: list[Recorded] = []
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running; use `with ScriptedOpenAI(...) as server:`")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def for_role(self, role: str) -> list[Recorded]:
        return [r for r in self.requests if r.role == role]

    def __enter__(self) -> ScriptedOpenAI:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-openai", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def next_reply(self, body: dict, headers: Mapping[str, str]) -> tuple[str | None, Reply | None]:
        """The role of a request and its next scripted reply (None when exhausted); records it."""
        role = role_of(body)
        with self._lock:
            replies = self.script.get(role or "", [])
            i = self._served.get(role or "", 0)
            reply = replies[i] if i < len(replies) else None
            self._served[role or ""] = i + 1
            self.requests.append(
                Recorded(role, body, 200 if reply is not None else 500, {k.lower(): v for k, v in headers.items()})
            )
        return role, reply

    def completion(self, body: dict, text: str) -> tuple[dict, dict]:
        """The message and usage answering `body` with `text`."""
        usage = {
            "prompt_tokens": len(json.dumps(body.get("messages", []))) // 4,
            "completion_tokens": max(1, len(text) // 4),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        move = _move(text)
        if move is not None:
            calls = []
            for i, c in enumerate(move.get("tool_calls") or []):
                args = c.get("args", {})
                arguments = args if isinstance(args, str) else json.dumps(args)
                call = {"id": f"call_{len(self.requests)}_{i}", "type": "function"}
                call["function"] = {"name": c["name"], "arguments": arguments}
                calls.append(call)
            message: dict[str, Any] = {"role": "assistant", "content": move.get("content")}
            if calls:
                message["tool_calls"] = calls
            return message, usage
        if body.get("tools"):
            call = {"id": f"call_{len(self.requests)}", "type": "function"}
            call["function"] = {"name": _tool_name(body), "arguments": text}
            return {"role": "assistant", "content": None, "tool_calls": [call]}, usage
        return {"role": "assistant", "content": text}, usage


def _handler(server: ScriptedOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _json(self, status: int, data: dict) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v1/models":
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            model = {"id": server.model, "object": "model", "created": 0, "owned_by": "dexforge-tests"}
            self._json(200, {"object": "list", "data": [model]})

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            role, reply = server.next_reply(body, self.headers)
            if reply is None:
                why = f"no scripted reply left for role {role!r}" if role else "no role in the system message"
                self._json(500, {"error": {"message": why, "type": "server_error", "code": "script_exhausted"}})
                return
            message, usage = server.completion(body, _serialise(reply, body))
            head = {"id": f"chatcmpl-{len(server.requests)}", "created": int(time.time()), "model": server.model}
            finish = "tool_calls" if message.get("tool_calls") else "stop"
            if not body.get("stream"):
                choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                self._json(200, {**head, "object": "chat.completion", "choices": [choice], "usage": usage})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            chunk = {**head, "object": "chat.completion.chunk"}
            for delta, reason in _deltas(message, finish):
                self._event({**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                self._event({**chunk, "choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _event(self, data: dict) -> None:
            self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

    return Handler


def _deltas(message: dict, finish: str) -> list[tuple[dict, str | None]]:
    """The stream of deltas that adds up to `message`, then the finish chunk."""
    out: list[tuple[dict, str | None]] = [({"role": "assistant", "content": ""}, None)]
    calls = message.get("tool_calls") or []
    for index, call in enumerate(calls):
        head = {"index": index, "id": call["id"], "type": "function"}
        out.append(({"tool_calls": [{**head, "function": {"name": call["function"]["name"], "arguments": ""}}]}, None))
        args = call["function"]["arguments"]
        for i in range(0, len(args), CHUNK):
            out.append(({"tool_calls": [{"index": index, "function": {"arguments": args[i : i + CHUNK]}}]}, None))
    text = message.get("content") or ""
    out += [({"content": text[i : i + CHUNK]}, None) for i in range(0, len(text), CHUNK)]
    out.append(({}, finish))
    return out
