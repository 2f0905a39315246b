"""A role's question to a model behind an OpenAI-compatible endpoint, with validated structured answers.

`ask(settings, role, system, user, Schema)` sends the system prompt and the user message (with the
scene renders as base64 PNG `image_url` parts when the role has vision), binds the answer schema with
`with_structured_output` (function calling, or a json_schema response format), and validates the
answer itself from the raw message: strict JSON, then the pydantic schema, then the caller's
`validate`. An invalid answer goes back to the model with the error, at most `max_invalid` answers
in all; the model's failures end in `RoleFailed`. Every attempt leaves a `CallRecord` (tokens, cost,
latency).

Why the raw message and not langchain's parsed value: langchain repairs truncated JSON (partial-JSON
parsing of streamed tool calls and of json_schema content), so a cut-off answer could pass with fields
missing; and given a pydantic class for json_schema, the OpenAI SDK parses inside the request and
raises before the raw message is returned. The json_schema response format is sent with
`strict: false`: the specs' schemas (dicts, tuples, discriminated unions, defaults) are not in the
subset that strict structured outputs accept.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import openai
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config, merge_configs
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, ValidationError

from dexforge.agents.context import ModelSettings
from dexforge.home import DexforgeError
from dexforge.sim.spec import describe_validation_error

T = TypeVar("T", bound=BaseModel)
NO_KEY = "not-needed"  # local servers (vLLM, Ollama, LM Studio) accept any key


class CallRecord(BaseModel):
    """One request to a model and what came of it."""

    role: str
    backend: str
    model: str
    ok: bool
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    attempt: int = 1


class RoleFailed(DexforgeError):
    """A role gave no valid answer: the endpoint failed, or every allowed answer was invalid."""

    def __init__(self, role: str, reason: str, attempts: int, records: Sequence[CallRecord] = ()) -> None:
        super().__init__(f"{role} failed after {attempts} attempt(s): {reason}")
        self.role = role
        self.reason = reason
        self.attempts = attempts
        self.records = list(records)


def chat_model(settings: ModelSettings, **overrides: Any) -> ChatOpenAI:
    """The chat model of `settings` (Chat Completions API, usage reported in streams too)."""
    if not settings.base_url:
        raise DexforgeError(f"no base URL for model {settings.model!r}; set DEXFORGE_BASE_URL or pass base_url")
    options: dict[str, Any] = {
        "base_url": settings.base_url,
        "model": settings.model,
        "api_key": os.environ.get(settings.api_key_env) or NO_KEY,
        "timeout": settings.timeout_s,
        "max_retries": settings.max_retries,
        "temperature": settings.temperature,
        "use_responses_api": False,
        "stream_usage": True,
    }
    return ChatOpenAI(**{**options, **overrides})


def _one_paragraph(text: str) -> str:
    return " ".join(text.split())


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return _one_paragraph(describe_validation_error(exc))
    return _one_paragraph(str(exc)) or type(exc).__name__


def user_content(text: str, images: Sequence[Path], vision: bool) -> str | list[dict[str, Any]]:
    """The user message: text alone, or text and `image_url` data URLs when the model sees images."""
    if not (vision and images):
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    for path in images:
        mime = mimetypes.guess_type(str(path))[0] or "image/png"
        data = base64.b64encode(Path(path).read_bytes()).decode()
        parts.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}})
    return parts


class _StreamedArgs(BaseCallbackHandler):
    """The raw argument text of streamed tool calls (langchain keeps only a partial-JSON repair of it)."""

    def __init__(self) -> None:
        self.args: dict[int, str] = {}

    def on_llm_new_token(self, token: str, *, chunk: Any = None, **kwargs: Any) -> None:
        message = getattr(chunk, "message", None)
        for part in getattr(message, "tool_call_chunks", None) or []:
            index = part.get("index") or 0
            self.args[index] = self.args.get(index, "") + (part.get("args") or "")


def _answer(raw: AIMessage, schema: type[T], method: str, streamed: _StreamedArgs) -> T:
    """The validated answer in a raw message; raises ValueError (ValidationError) when there is none."""
    if (raw.response_metadata or {}).get("finish_reason") == "length":
        raise ValueError("the answer was cut off at the output token limit; give a shorter, complete answer")
    if refusal := raw.additional_kwargs.get("refusal"):
        raise ValueError(f"the model refused: {refusal}")
    if method == "json_schema":
        if not isinstance(raw.content, str) or not raw.content.strip():
            raise ValueError(f"the answer must be one JSON object matching the {schema.__name__} schema")
        return schema.model_validate_json(raw.content)
    if raw.invalid_tool_calls:
        bad = raw.invalid_tool_calls[0]
        raise ValueError(f"the arguments of {bad.get('name')} are not valid JSON: {bad.get('args')!r}")
    if not raw.tool_calls:
        raise ValueError(f"answer by calling the function {schema.__name__} with the whole answer as its arguments")
    if 0 in streamed.args:
        return schema.model_validate_json(streamed.args[0])
    return schema.model_validate(raw.tool_calls[0]["args"])


def _as_given(raw: AIMessage, streamed: _StreamedArgs) -> AIMessage:
    """The answer as the model wrote it: streamed tool calls with their raw arguments, not the repair."""
    if not streamed.args or not raw.tool_calls:
        return raw
    calls = [
        invalid_tool_call(name=c["name"], args=streamed.args.get(i, ""), id=c.get("id"), error=None)
        for i, c in enumerate(raw.tool_calls)
    ]
    return AIMessage(content=raw.content, invalid_tool_calls=calls, response_metadata=raw.response_metadata)


def _feedback(raw: AIMessage, error: str) -> list[BaseMessage]:
    """The rejected answer and the rejection (every tool call needs its tool message on the real API)."""
    calls = [c.get("id") for c in [*raw.tool_calls, *raw.invalid_tool_calls] if c.get("id")]
    tool_replies = [ToolMessage(content="Rejected; see the next message.", tool_call_id=str(i)) for i in calls]
    rejection = f"Your last answer was rejected: {error}. Answer again with the whole corrected answer."
    return [raw, *tool_replies, HumanMessage(content=rejection)]


def _structured(llm: BaseChatModel, schema: type[BaseModel], method: str) -> Runnable[Any, dict[str, Any]]:
    """The model bound to answer in `schema`; returns {"raw", "parsed", "parsing_error"} (only raw is used)."""
    if method == "json_schema":
        response_format = {
            "name": schema.__name__,
            "description": (schema.__doc__ or "").strip(),
            "schema": schema.model_json_schema(),
            "strict": False,
        }
        return llm.with_structured_output(response_format, method="json_schema", include_raw=True)
    return llm.with_structured_output(schema, method="function_calling", include_raw=True)


def ask(
    settings: ModelSettings,
    role: str,
    system: str,
    user: str,
    schema: type[T],
    *,
    images: Sequence[Path] = (),
    validate: Callable[[T], None] | None = None,
    max_invalid: int = 3,
    model: BaseChatModel | None = None,
) -> tuple[T, list[CallRecord]]:
    """Ask `role` for an answer of type `schema`; returns it and one record per attempt.

    `model` replaces `chat_model(settings)` (e.g. one built with `streaming=True`). Raises RoleFailed
    when the endpoint cannot be reached or fails, or after `max_invalid` invalid answers.
    """
    if max_invalid < 1:
        raise ValueError(f"max_invalid must be at least 1, got {max_invalid}")
    method = settings.structured_output
    overrides = {"streaming": True} if settings.stream else {}  # unset, LangGraph's messages mode may stream
    runnable = _structured(model or chat_model(settings, **overrides), schema, method)
    messages: list[BaseMessage] = [
        SystemMessage(content=system),
        HumanMessage(content=user_content(user, images, settings.vision)),
    ]
    records: list[CallRecord] = []
    error = ""
    for attempt in range(1, max_invalid + 1):
        streamed = _StreamedArgs()
        config: RunnableConfig = merge_configs(ensure_config(), {"callbacks": [streamed]})
        start = time.perf_counter()
        record = CallRecord(role=role, backend=settings.backend, model=settings.model, ok=False, attempt=attempt)
        try:
            raw = runnable.invoke(messages, config=config)["raw"]
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            record.latency_s = time.perf_counter() - start
            record.error = _endpoint_error(exc, settings)
            records.append(record)
            raise RoleFailed(role, record.error, attempt, records) from exc
        record.latency_s = time.perf_counter() - start
        usage = raw.usage_metadata or {}
        record.input_tokens = int(usage.get("input_tokens", 0))
        record.output_tokens = int(usage.get("output_tokens", 0))
        record.cost_usd = (
            record.input_tokens * settings.price_in_per_mtok + record.output_tokens * settings.price_out_per_mtok
        ) / 1e6
        try:
            answer = _answer(raw, schema, method, streamed)
            if validate is not None:
                validate(answer)
        except (ValueError, DexforgeError) as exc:  # ValidationError is a ValueError
            error = _error_text(exc)
            record.error = error
            records.append(record)
            messages += _feedback(_as_given(raw, streamed), error)
            continue
        record.ok = True
        records.append(record)
        return answer, records
    raise RoleFailed(role, f"{max_invalid} invalid answer(s); the last: {error}", max_invalid, records)


def _endpoint_error(exc: openai.APIError, settings: ModelSettings) -> str:
    return endpoint_failure(exc, settings)


def endpoint_failure(exc: openai.APIError, settings: ModelSettings) -> str:
    """One line on why the endpoint gave no answer (unreachable, timed out, an HTTP error)."""
    where = f"{settings.model} @ {settings.base_url}"
    if isinstance(exc, openai.APITimeoutError):
        return f"no answer from {where} within {settings.timeout_s:g} s ({settings.max_retries} retries)"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach {where} ({settings.max_retries} retries): {_one_paragraph(str(exc))}; is the server up?"
    status = getattr(exc, "status_code", "?")
    return f"{where} answered HTTP {status}: {_one_paragraph(exc.message)}"
