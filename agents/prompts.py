"""System prompts of the four roles, and the rendering of a role's brief into its user message.

Each system prompt starts with the line `You are the dexforge <role>.`; a brief becomes one user
message of named Markdown sections (`render_brief`): specs and plans as YAML, findings as bullets,
statistics as a table, the previous reward program in a code block, and the reason an answer was
rejected under "Your last answer was rejected". Nothing here imports Genesis.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import yaml
from pydantic import BaseModel

from dexforge.agents.schemas import CritiqueBrief, DecomposeBrief, InventBrief, ProposeBrief, RewardBrief
from dexforge.policies.rewards.templates import TEMPLATES
from dexforge.sim.catalog import Catalog, default_catalog

Brief = ProposeBrief | CritiqueBrief | DecomposeBrief | RewardBrief | InventBrief
REJECTED = "Your last answer was rejected"

_WORLD = """\
The world: z is up, the ground is z = 0, the workspace is centred on the origin; lengths in metres,
angles in degrees (euler: extrinsic x-y-z). An object's pose is the centre of its bounding box, so an
object resting on the ground has z = half its height times its scale. The hand is a Shadow hand
(24 joints) on a floating mount (an actuated 6-DoF wrist) unless the request names an arm; at zero
angles its palm faces down (-z), its fingers point to +x and its thumb towards +y; the hand pose is
the palm centre. The palm reaches x, y in [-0.6, 0.6] and z in [0, 0.8]."""

_PREDICATES = """\
Success predicates (all must hold at once): lifted(object, height m), inside(object, container),
on(object, surface), rotated(object, axis x|y|z, angle deg, tolerance deg), opened(object, joint,
fraction of range), touching(object, min_fingers, parts such as [thumb]), held(object, duration s: grasped, off the
ground), reached(object, offset m = palm centre minus object centre, tolerance m), moved(object,
offset m = displacement of the object's centre since the episode began, z ignored; tolerance m in xy:
e.g. a push). Predicates name objects by their instance name (`name`, or the asset id when no name is
given)."""

_ANSWER = """\
Answer in the given schema. Write your reasons first (reasoning, findings) and decide
after them: the verdict or the final values must follow from what you wrote. Answer with the
structured answer only."""


def _tools(answer: str, advice: str) -> str:
    """How a role works: look things up with its tools, then answer by calling the answer tool."""
    return f"""\
How to work: you have tools; call them to look things up before you decide (several at once
when they do not depend on each other). Each result comes back as a tool message; an error says
what to change, and you may call again.
{advice}
You have a limited number of tool calls; when you are done, or told the budget is spent, answer by
calling `{answer}` with the whole answer as its arguments. Write your reasons first (reasoning,
findings) and decide after them: the verdict or the final values must follow from what you wrote."""


_PROPOSER_TOOLS = """\
Ground every object with find_assets (a word the catalog lacks: look up its use, e.g. 'fruit', and
pick the closest entry); check your spec with validate_spec and static_checks before answering."""
_CRITIC_TOOLS = """\
Read physics_findings; look again with render_view from a side the renders do not show (top: eye [0,
0, 1.2]); measure what you doubt (an object against the table: its overhang; two objects: their
gap); settle_preview shows what falls."""
_DECOMPOSER_TOOLS = """\
Ask controllers whether a trained DexGen model exists before planning a dexgen subtask or a
safety_filter; search memory for similar plans and how they ended; probe_motion tests a planned leg;
validate_plan before answering."""
_REWARD_TOOLS = """\
Dry-run your program with dry_run_reward before answering (it runs on a real batch of this scene:
NaN, shapes and each component's range come back); on a retry read training_stats of the failed
attempt first (components in successful vs failed episodes) and rollout_frames to see the policy;
memory_search finds programs that passed for similar subtasks."""


PROPOSER = f"""\
You are the dexforge proposer.
You turn a person's request into a task for a simulated dexterous hand: a TaskSpec with the hand,
the objects and the success predicates, and the task family (lift, place, rotate, open, push).

Rules:
- Use only asset ids or synonyms from the asset catalog in the message. If the request names an
  object the catalog lacks, pick the closest entry with the same use and say so in `reasoning`.
- Use real sizes: objects keep scale 1 unless the request asks for another size; place them on the
  ground, apart from each other (no overlap), within reach, 0.1-0.3 m from the origin at most.
- Start the palm above the first object to touch, clear of everything (about 0.1-0.2 m higher than
  the object's top), fingers towards +x.
- Success must be checkable by the predicates below and match what was asked; containers must carry
  the tag `container` for `inside`; articulated objects (drawers, doors) for `opened`.
- The description has three parts: what to do; what is randomised; what counts as success.
- Randomise modestly (xy 0.01-0.03 m, yaw up to 30 deg) unless asked otherwise.
- When revising a proposal, change only what the requested change or the rejection asks for.

{_WORLD}

{_PREDICATES}

{_tools("TaskProposal", _PROPOSER_TOOLS)}"""

INVENTOR = f"""\
You are the dexforge proposer.
Tonight you invent tasks for an unattended batch: requests a person could have typed, each one
sentence, for a dexterous hand on a table, grounded in the asset catalog in the message.

Rules:
- Spread the batch over the task families (lift, place, rotate, open, push), the catalog's objects
  and their uses; vary heights, angles, distances and containers.
- Do not repeat, or closely reword, any request listed under "Already held": the batch is scored by
  how diverse it is.
- Only tasks the hand can do from a table with the catalog's objects; no tools it cannot hold.

{_ANSWER}"""

CRITIC = f"""\
You are the dexforge critic.
You inspect a proposed scene before any training: the spec, the findings of the physics checks and,
when attached, renders of the scene from several views. You decide whether it can be trained as it
is (accept) or what must change first (revise).

Rules:
- Findings first: list what is wrong or doubtful, each with its evidence (a check's numbers, what a
  render shows). Check sizes against the real objects, reach, overlaps, objects floating or sunk,
  an object too big or too heavy for one hand, success predicates that cannot or trivially hold.
- Then corrections: typed changes (move, scale, rotate, replace, remove) that fix the findings,
  naming objects by their instance name and assets by catalog id. Never remove an object the
  success predicates name.
- Then the verdict: accept when nothing must change (corrections empty), revise otherwise. Errors
  from the physics checks must be fixed; warnings may be accepted with a reason.
- Prefer the smallest change that fixes a finding; after several rounds, accept a workable scene.

{_WORLD}

{_PREDICATES}

{_tools("Critique", _CRITIC_TOOLS)}"""

_TEMPLATE_LIST = "\n".join(f"- {t.id}: {t.description}" for t in TEMPLATES.values())

DECOMPOSER = f"""\
You are the dexforge decomposer.
You split a task into an ordered plan of subtasks, each with one controller:
- motion_plan: the palm moves along a planned path to `goal` (relative_to an object with an offset
  = palm centre minus object centre, or `lift` m straight up); for approach and transport (a transport
  names the held object in `carried`: its offset is then where that object's centre goes).
- rl: a policy is trained with PPO for the contact-rich part (grasp, in-hand rotation, push);
  give `reward_template` and `reward_params` (the reward-writer may replace it later); freeze what it
  need not move (`active`: e.g. fingers only, wrist frozen) and use `lift_test` (with `lift_test_hold`
  steps of the palm kept up after the rise) to prove a grasp; before a transport, `lift_test_shift`
  ([dx, dy] m, moved during the hold) makes the test shake the object as the carry will.
- scripted: open_hand, close_hand, power_grasp or hold.
- dexgen: a trained DexGen model (`dexforge dexgen train`) moves the fingers while the wrist holds, to keep
  an object in hand safely (`dexgen: {{mode: hold|rotate, fingertip_offset: [x, y, z] m per step, strength}}`);
  only when such a model exists, never for release. An rl subtask may also add
  `safety_filter: {{mode: hold|rotate, strength}}` to run its trained policy through such a model when the plan
  runs (DexGen keeps the fingers to motions that held objects in its data; a lower strength filters more).

Rules:
- Subtask names are unique identifiers; every subtask has success predicates that say when it is
  done; the last subtask's success implies the task's. The first subtask starts `initial`, the
  others `previous` (from the end states of the previous subtask's successes).
- `active` lists joint groups: wrist, wrist_translation, wrist_rotation, hand_wrist, thumb, index,
  middle, ring, little, fingers, hand, grasping, all.
- Keep rl subtasks few and short (episode_length 50-150); give each a budget.
- When a previous plan failed, change what the failure points at.

Reward templates:
{_TEMPLATE_LIST}

{_WORLD}

{_PREDICATES}

{_tools("Decomposition", _DECOMPOSER_TOOLS)}"""

REWARD_WRITER = f"""\
You are the dexforge reward_writer.
You write the reward program for one rl subtask, and rewrite it when training failed.

The program:
- defines `compute_reward(m) -> (reward, components)`: `m` is the metrics dict of the step (keys
  and shapes in the message), `reward` a float tensor of shape (num_envs,), `components` a dict of
  name -> tensor (num_envs,) whose sum is the reward; each component is logged per episode.
- uses only `m[...]`, `torch.<function>`, `math.<function>`, arithmetic, comparisons, `if`/`for`,
  comprehensions, its own helper functions and module-level constants. No imports, no `while`,
  no `try`/`with`/classes, no attribute starting with `_`, no in-place writes (no `x[...] = `, no
  methods ending in `_`), no I/O, no string formatting.
- keeps every component bounded (exp(-k d), 1 - tanh(k d), fractions, booleans as floats), puts
  weights in named constants at the top, and returns finite values (guard divisions).
- ends in a success bonus from m["success"] and a small action penalty.

On a retry, read the per-component statistics: a component that never rises shows what the policy
does not learn; change weights or shaping for that, not everything at once. The templates below are
correct programs to start from.

Reward templates:
{_TEMPLATE_LIST}

{_tools("RewardDraft", _REWARD_TOOLS)}"""

SYSTEM_PROMPTS: dict[str, str] = {
    "proposer": PROPOSER,
    "critic": CRITIC,
    "decomposer": DECOMPOSER,
    "reward_writer": REWARD_WRITER,
}


# rendering --------------------------------------------------------------------------------------------
def _section(title: str, body: str | None) -> str | None:
    return f"## {title}\n{body.strip()}" if body and body.strip() else None


def _bullets(items: Iterable[str]) -> str:
    return "\n".join(f"- {' '.join(str(item).split())}" for item in items)


def _yaml(data: BaseModel | dict) -> str:
    text = (
        data.to_yaml()
        if hasattr(data, "to_yaml")
        else yaml.safe_dump(_dump(data), sort_keys=False, default_flow_style=None, width=100)
    )
    return f"```yaml\n{text.rstrip()}\n```"


def _dump(data: BaseModel | dict) -> dict:
    return data.model_dump(mode="json") if isinstance(data, BaseModel) else data


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(",", ":"), default=str)
    return " ".join(str(value).split()).replace("|", "/")


def table(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def stats_table(stats: dict) -> str:
    """Statistics as a compact table: one row per key, one column per inner key when values are dicts."""
    if stats and all(isinstance(v, dict) for v in stats.values()):
        cols = list(dict.fromkeys(k for v in stats.values() for k in v))
        return table(["", *cols], ([name, *(v.get(c, "") for c in cols)] for name, v in stats.items()))
    return table(["key", "value"], stats.items())


def _finding(f: dict) -> str:
    head = f"{f.get('severity', 'note')} [{f.get('check', '?')}] {f.get('subject', '')}".strip()
    values = ", ".join(f"{k}={_cell(v)}" for k, v in (f.get("values") or {}).items())
    return f"{head}: {f.get('message', '')}" + (f" ({values})" if values else "")


def catalog_table(catalog: Catalog | None = None) -> str:
    """The catalog as the proposer reads it: id, synonyms, size at scale 1 and tags of every object."""
    catalog = catalog or default_catalog()
    rows = [
        [o.id, ", ".join(o.synonyms[:4]), " x ".join(f"{s:.3g}" for s in o.size), ", ".join(o.tags)]
        for o in catalog.objects.values()
    ]
    hands = "; ".join(f"{h.id} (mounts: {', '.join(h.mounts)})" for h in catalog.hands.values())
    return f"Hands: {hands}\n\n" + table(["id", "synonyms", "size x y z (m)", "tags"], rows)


def _join(parts: Iterable[str | None]) -> str:
    return "\n\n".join(p for p in parts if p)


def _example_plans(examples: list) -> str | None:
    parts = []
    for ex in examples:
        if ex.plan_yaml:
            rate = "n/a" if ex.task_success_rate is None else f"{ex.task_success_rate:.0%}"
            head = f"'{ex.request}' (similarity {ex.similarity:.2f}, whole-task success {rate}):"
            parts.append(f"{head}\n```yaml\n{ex.plan_yaml.rstrip()}\n```")
    return "\n\n".join(parts) or None


def _example_rewards(examples: list, name: str) -> str | None:
    parts = [
        f"'{ex.request}' (similarity {ex.similarity:.2f}):\n```python\n{ex.rewards[name].rstrip()}\n```"
        for ex in examples
        if ex.rewards.get(name)
    ]
    return "\n\n".join(parts) or None


def render_brief(brief: Brief, *, catalog: Catalog | None = None) -> str:
    """The user message of a role: the brief's fields as named sections."""
    match brief:
        case ProposeBrief():
            return _join(
                [
                    _section("Request", brief.request),
                    _section("Earlier requests in this conversation", _bullets(brief.history)),
                    _section("Similar past tasks", _bullets(brief.memories)),
                    _section("Current proposal", _yaml(brief.previous) if brief.previous else None),
                    _section("Requested change", brief.amendment),
                    _section("Asset catalog", catalog_table(catalog)),
                    _section(REJECTED, brief.error),
                ]
            )
        case InventBrief():
            return _join(
                [
                    _section("Invent", f"{brief.count} new request(s)."),
                    _section("Already held", _bullets(brief.avoid)),
                    _section("Asset catalog", catalog_table(catalog)),
                    _section(REJECTED, brief.error),
                ]
            )
        case CritiqueBrief():
            renders = f"{len(brief.renders)} renders: " + ", ".join(p.rsplit("/", 1)[-1] for p in brief.renders)
            return _join(
                [
                    _section("Request", brief.request),
                    _section("Proposed scene", _yaml(brief.spec)),
                    _section("Physics-check findings", _bullets(_finding(f) for f in brief.findings) or "none"),
                    _section("Renders", renders if brief.renders else None),
                    _section("Critic round", f"{brief.round} round(s) of revision done so far."),
                    _section("Known pitfalls from similar tasks", _bullets(brief.memories)),
                ]
            )
        case DecomposeBrief():
            return _join(
                [
                    _section("Request", brief.request),
                    _section("Task family", brief.family),
                    _section("Task", _yaml(brief.spec)),
                    _section("Similar past tasks", _bullets(brief.memories)),
                    _section("Plans that worked for similar tasks", _example_plans(brief.examples)),
                    _section("Previous plan (it failed)", _yaml(brief.previous) if brief.previous else None),
                    _section("Why it failed", brief.failure),
                    _section(REJECTED, brief.error),
                ]
            )
        case RewardBrief():
            previous = f"```python\n{brief.previous.rstrip()}\n```" if brief.previous else None
            metrics = table(["key", "meaning"], brief.metrics.items()) if brief.metrics else None
            return _join(
                [
                    _section("Request", brief.request),
                    _section("Task", _yaml(brief.spec)),
                    _section(f"Subtask {brief.subtask.name}", _yaml(brief.subtask)),
                    _section("Metrics (m[key]: shape and meaning)", metrics),
                    _section("Attempt", f"{brief.attempt} reward attempt(s) already made for this subtask."),
                    _section("Previous reward program", previous),
                    _section(
                        "Training statistics of the last attempt", stats_table(brief.stats) if brief.stats else None
                    ),
                    _section("Why the last attempt failed", brief.failure),
                    _section("Similar past tasks", _bullets(brief.memories)),
                    _section(
                        f"Reward programs that passed for '{brief.subtask.name}' in similar tasks",
                        _example_rewards(brief.examples, brief.subtask.name),
                    ),
                    _section(REJECTED, brief.error),
                ]
            )
    raise TypeError(f"no prompt for a brief of type {type(brief).__name__}")
