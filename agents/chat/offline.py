"""The chat assistant without a language model: a chat model that reads the person's words and calls tools.

`OfflineChatModel` is a LangChain chat model (it supports `bind_tools`) that answers deterministically:

- after tool results it answers in words, summarising them (no further call);
- after a person's message it recognises one intent by keywords of their own words (`read_intent`):
  start ("lift the cube", "run ..."; add "stop after planning" or "just check the scene" to end early), show,
  status, amend ("make the cube smaller", "use the mug instead"), approve ("yes", "ok", "go ahead"),
  explain ("why did it fail"), retrain ("retrain grasp with 20000 steps"), memory ("what do you remember
  about cubes"), help and quit; while a run waits for approval, a reply that is no other intent is taken as
  a change to its scene. Anything else gets the list of what it can do.

It knows the conversation's current run from the artifacts of earlier tool messages (never from text a model
wrote). Only the person's words are matched, by simple tokens; nothing a model wrote is parsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from dexforge.agents.offline.words import VERBS
from dexforge.agents.scene_nodes import YES

HELP = (
    "I can:\n"
    "- start a run: 'lift the cube', 'run put the apple in the bowl' (add 'stop after planning' or 'just check "
    "the scene' to end early)\n"
    "- show the current scene or plan: 'show'\n"
    "- say how a run stands: 'status'\n"
    "- change a scene that waits for approval: 'make the cube smaller', 'use the mug instead'\n"
    "- approve it and train: 'yes'\n"
    "- explain how a run went: 'why did it fail', 'explain'\n"
    "- retrain a subtask of a finished run: 'retrain grasp with 20000 steps'\n"
    "- search past runs: 'what do you remember about cubes', 'search memory for failures with the mug'\n"
    "- end the chat: 'quit' (or Ctrl-D)"
)
APPROVALS = set(YES) - {""} | {"sure", "yep", "yeah", "yes please", "do it", "go for it", "approve it", "ship it"}
NO = {"no", "nope", "nah", "cancel", "not yet", "wait"}
QUIT = {"quit", "exit", "bye", "goodbye", "q"}
HELP_WORDS = {"help", "commands", "options"}
EXPLAIN_WORDS = {"why", "explain", "explanation", "wrong", "happened"}
MEMORY_WORDS = {"remember", "memory", "memories", "recall", "experience"}
STATUS_WORDS = {"status", "progress", "state"}
SHOW_WORDS = {"show", "display", "view", "see", "look", "render", "renders", "picture", "pictures"}
START_WORDS = {"run", "start", "try", "new", "begin", "another"}
AMEND_LEADS = {"make", "change", "use", "replace", "swap", "instead", "rather"}  # task verbs start a new run
AMEND_WORDS = {"instead", "smaller", "bigger", "larger", "closer", "further", "farther", "higher", "lower"}
KIND_WORDS = {
    "failure": {"failure", "failures", "failed", "fail", "pitfalls", "mistakes", "problems"},
    "subtask": {"subtask", "subtasks", "policy", "policies", "skills", "skill"},
    "task": {"task", "tasks", "runs"},
}
PLAN_WORDS = {"plan", "planning", "decompose", "decomposition", "plans", "planned"}
CHECK_WORDS = {"check", "checking", "checked", "scene"}
STOP_WORDS = {"stop", "only", "just", "end"}
FILLER = {"the", "a", "an", "subtask", "again", "please", "with", "for", "of", "using", "steps", "step", "env"}


def tokens(text: str) -> list[str]:
    """Lower-case words and numbers of the person's text ('20,000' -> '20000'; hyphens and underscores stay)."""
    low = text.lower()
    chars = []
    for i, c in enumerate(low):
        between_digits = 0 < i < len(low) - 1 and low[i - 1].isdigit() and low[i + 1].isdigit()
        if c == "," and between_digits:
            continue
        chars.append(c if c.isalnum() or c in "_-" or (c == "." and between_digits) else " ")
    return [w.strip("-_") for w in "".join(chars).split() if w.strip("-_")]


def number(word: str) -> int | None:
    """'20000' -> 20000, '20k' -> 20000, '1.5m' -> 1500000; None for anything else."""
    scale = {"k": 1_000, "m": 1_000_000}.get(word[-1:], 1) if word[-1:] in ("k", "m") else 1
    digits = word[:-1] if scale > 1 else word
    try:
        value = float(digits)
    except ValueError:
        return None
    return int(value * scale) if value > 0 else None


def is_run_id(word: str) -> bool:
    return len(word) > 16 and word[:8].isdigit() and word.count("-") >= 2


@dataclass(frozen=True)
class Facts:
    """What the conversation says about its current run (from tool artifacts)."""

    run_id: str | None = None
    status: str | None = None

    @property
    def waiting(self) -> bool:
        return self.status == "waiting"


@dataclass(frozen=True)
class Intent:
    """A tool to call with its arguments, or a reply in words."""

    tool: str | None = None
    args: dict = field(default_factory=dict)
    reply: str | None = None


def facts(messages: Sequence[BaseMessage]) -> Facts:
    for m in reversed(messages):
        art = getattr(m, "artifact", None) if isinstance(m, ToolMessage) else None
        if isinstance(art, dict) and art.get("run_id") and art.get("status"):
            return Facts(art["run_id"], art["status"])
    return Facts()


def _clauses(text: str) -> list[str]:
    """The text split at commas, semicolons, 'and' and 'but' (to find an 'and stop after planning')."""
    parts: list[str] = []
    for piece in text.replace(";", ",").split(","):
        words: list[str] = []
        for w in piece.split():
            if w.lower() in ("and", "but", "then") and words:
                parts.append(" ".join(words))
                words = []
            else:
                words.append(w)
        if words:
            parts.append(" ".join(words))
    return parts


def start_intent(text: str) -> Intent:
    """start_run with the request (a leading 'run'/'start' dropped) and an early stop the words ask for; the
    request is otherwise the person's text as written."""
    stop_after = None
    request = text.strip()
    for clause in _clauses(text):
        words = set(tokens(clause))
        if words & STOP_WORDS and words & PLAN_WORDS:
            stop_after = "decompose"
        elif words & STOP_WORDS and words & CHECK_WORDS:
            stop_after = "check"
        else:
            continue
        at = text.find(clause)
        before, after = text[:at], text[at + len(clause) :]
        request = _trim(before if before.strip(" ,;") else after)
        break
    first = request.split(maxsplit=1)
    while first and first[0].lower().strip(":") in START_WORDS | {"task"}:
        request = first[1] if len(first) > 1 else ""
        first = request.split(maxsplit=1)
    args: dict[str, Any] = {"request": request or text.strip()}
    if stop_after:
        args["stop_after"] = stop_after
    return Intent("start_run", args)


def _trim(text: str) -> str:
    """A request without the separators an early-stop clause left at its ends (commas, 'and', 'but', 'then')."""
    joins = ("and", "but", "then")
    out = text.strip(" ,;:.")
    while True:
        head, _, last = out.rpartition(" ")
        first, _, tail = out.partition(" ")
        if last.lower() in joins:
            out = head.strip(" ,;:.")
        elif first.lower() in joins:
            out = tail.strip(" ,;:.")
        else:
            return out


def retrain_intent(words: list[str], run_id: str | None) -> Intent:
    after = words[words.index("retrain") + 1 :] if "retrain" in words else words
    budget = next((n for w in after if (n := number(w)) is not None), None)
    names = [w for w in after if w not in FILLER and number(w) is None and not is_run_id(w) and w not in ("train",)]
    if not names:
        return Intent(reply="Which subtask should I retrain? For example: 'retrain grasp with 20000 steps'.")
    if budget is None:
        return Intent(
            reply=f"How many env steps should '{names[0]}' train for? For example: 'retrain {names[0]} "
            "with 20000 steps'."
        )
    args: dict[str, Any] = {"subtask": names[0], "budget": budget}
    if "scratch" in words or "fresh" in words:
        args["from_scratch"] = True
    if run_id:
        args["run_id"] = run_id
    return Intent("retrain", args)


def memory_intent(text: str, words: list[str]) -> Intent:
    query = text
    for marker in (" about ", " for ", " on ", " regarding "):
        if marker in f" {text.lower()} ":
            query = f" {text} "[f" {text.lower()} ".index(marker) + len(marker) :]
            break
    query = query.strip(" ?.!") or text
    args: dict[str, Any] = {"query": query}
    for kind, kind_words in KIND_WORDS.items():
        if set(words) & kind_words:
            args["kind"] = kind
            break
    return Intent("memory_search", args)


def read_intent(text: str, known: Facts) -> Intent:
    """What the person's words ask for, given what is known about the current run."""
    words = tokens(text)
    joined = " ".join(words)
    wordset = set(words)
    run_id = next((w for w in words if is_run_id(w)), None)
    with_run = {"run_id": run_id} if run_id else {}
    if not words:
        return Intent(reply=HELP)
    if joined in QUIT:
        return Intent(reply="Goodbye.")
    if wordset & HELP_WORDS or joined in ("what can you do", "what can i do", "hello", "hi"):
        return Intent(reply=HELP)
    if joined in APPROVALS:
        if known.waiting or run_id:
            return Intent("approve", with_run)
        return Intent(reply=_nothing_waiting(known))
    if joined in NO:
        return Intent(reply="What should I change? For example: 'make the cube smaller' or 'use the mug instead'.")
    if "retrain" in wordset or ("train" in wordset and "again" in wordset):
        return retrain_intent(words, run_id)
    if wordset & EXPLAIN_WORDS:
        return Intent("explain", with_run)
    if wordset & MEMORY_WORDS:
        return memory_intent(text, words)
    if wordset & STATUS_WORDS or ("how" in wordset and wordset & {"going", "doing", "goes"}):
        return Intent("status", with_run)
    if words[0] in SHOW_WORDS or ("show" in wordset and len(words) <= 5):
        return Intent("show", with_run)
    if words[0] in START_WORDS:
        return start_intent(text)
    if known.waiting:
        return Intent("amend", {"text": text.strip(), **with_run})
    has_verb = bool(wordset & set(VERBS))
    if known.run_id and not has_verb and (words[0] in AMEND_LEADS or wordset & AMEND_WORDS):
        return Intent("amend", {"text": text.strip(), **with_run})
    if has_verb:
        return start_intent(text)
    return Intent(reply=f"I did not understand that. {HELP}")


def _nothing_waiting(known: Facts) -> str:
    if known.run_id:
        return (
            f"Run {known.run_id} is not waiting for approval (it is {known.status}). Tell me a new task to start one."
        )
    return "There is no scene waiting for approval. Tell me a task first, for example 'lift the cube'."


# answering after tool results ----------------------------------------------------------------------------------
def summarise(message: ToolMessage) -> str:
    """A tool result in a few words, with what the person can do next."""
    if message.status == "error":
        text = str(message.content)
        return "That did not work: " + (text[len("error: ") :] if text.startswith("error: ") else text)
    art = message.artifact if isinstance(message.artifact, dict) else {}
    kind = art.get("kind")
    if kind == "run" and message.name == "status":
        return _status_summary(art)
    if kind == "run":
        return _run_summary(art)
    if kind == "retrain":
        rate = art.get("success_rate")
        stop = f", stopped by {art['stop_reason']}" if art.get("stop_reason") else ""
        return (
            f"I retrained {art['subtask']} of run {art['run_id']} with a budget of {art['budget']:,} env steps: "
            f"success {'-' if rate is None else f'{rate:.0%}'} over {art.get('episodes')} episodes{stop}. "
            f"The attempt is in {art['folder']}."
        )
    if kind == "memory":
        hits = art.get("hits") or []
        if not hits:
            return f"I remember nothing about '{art['query']}' yet; the store fills as runs end."
        top = "; ".join(f"{h['text']} ({h['outcome']}, similarity {h['similarity']:.2f})" for h in hits[:3])
        return f"I found {len(hits)} record(s) about '{art['query']}'. Nearest: {top}"
    return str(message.content)  # explain: the explanation is already words


def _status_summary(art: dict) -> str:
    from dexforge.agents.chat.views import STATUS_TEXT

    steps = " -> ".join(art.get("node_path") or []) or "none yet"
    rates = ", ".join(f"{k} {'-' if v is None else f'{v:.0%}'}" for k, v in (art.get("subtasks") or {}).items())
    reason = f" Reason: {art['reason']}." if art.get("reason") else ""
    return (
        f"Run {art['run_id']}: {STATUS_TEXT.get(art['status'], art['status'])}. Steps so far: {steps}."
        + (f" Subtask success: {rates}." if rates else "")
        + reason
    )


def _run_summary(art: dict) -> str:
    rid, status = art["run_id"], art["status"]
    if status == "waiting":
        critique = art.get("critique") or {}
        findings = "; ".join(critique.get("findings") or []) or "no findings"
        renders = ", ".join(art.get("renders") or {}) or "none"
        return (
            f"Run {rid} proposes this scene: {art.get('scene')}. The critic says {critique.get('verdict')} "
            f"({findings}). Renders: {renders}. Answer yes to train it, or tell me what to change."
        )
    rates = ", ".join(f"{k} {'-' if v is None else f'{v:.0%}'}" for k, v in (art.get("subtasks") or {}).items())
    done = f" Subtask success: {rates}." if rates else ""
    if status == "succeeded":
        rate = art.get("task_success_rate")
        return (
            f"Run {rid} succeeded: whole-task success {'-' if rate is None else f'{rate:.0%}'}.{done} "
            f"Report: {art.get('report')}"
        )
    if status == "failed":
        return f"Run {rid} failed: {art.get('reason')}.{done} Ask me why for the details, or retrain a subtask."
    if status == "stopped":
        plan = ", ".join(art.get("plan") or [])
        if plan:
            return f"Run {rid} stopped early, as asked. Its plan: {plan}.{done}"
        critique = art.get("critique") or {}
        findings = "; ".join(critique.get("findings") or []) or "no findings"
        return (
            f"Run {rid} stopped after checking its scene, as asked: {art.get('scene')}. The critic says "
            f"{critique.get('verdict')} ({findings})."
        )
    steps = " -> ".join(art.get("node_path") or [])
    return f"Run {rid} has not finished (steps so far: {steps or 'none'}); `dexforge resume {rid}` continues it."


class OfflineChatModel(BaseChatModel):
    """The chat assistant's rules as a chat model (no network, deterministic)."""

    tool_names: tuple[str, ...] = ()

    @property
    def _llm_type(self) -> str:
        return "dexforge-offline-chat"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> OfflineChatModel:  # type: ignore[override]
        names = tuple(convert_to_openai_tool(t)["function"]["name"] for t in tools)
        return self.model_copy(update={"tool_names": names})

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        return _result(self.answer(messages))

    def answer(self, messages: Sequence[BaseMessage]) -> AIMessage:
        """The next assistant message for a conversation."""
        results = _latest_results(messages)
        if results:
            return AIMessage(content="\n".join(summarise(m) for m in results))
        person = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        intent = read_intent(str(person.content) if person is not None else "", facts(messages))
        if intent.tool is None:
            return AIMessage(content=intent.reply or HELP)
        if self.tool_names and intent.tool not in self.tool_names:
            return AIMessage(content=f"I would call {intent.tool}, but it is not available here. {HELP}")
        call = {"name": intent.tool, "args": intent.args, "id": f"offline_{len(messages)}", "type": "tool_call"}
        return AIMessage(content="", tool_calls=[call])


def _latest_results(messages: Sequence[BaseMessage]) -> list[ToolMessage]:
    """The tool messages that answered the last assistant message (empty when the person spoke last)."""
    out: list[ToolMessage] = []
    for m in reversed(messages):
        if isinstance(m, ToolMessage):
            out.append(m)
        elif isinstance(m, HumanMessage) and m.name == "renders":  # images that follow a tool result
            continue
        else:
            break
    return list(reversed(out))


def _result(message: AIMessage) -> ChatResult:
    message.usage_metadata = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    return ChatResult(generations=[ChatGeneration(message=message)])
