"""Understanding a request: the task family, the objects grounded in the catalog, the numbers.

`parse_request(text, catalog, context)` turns "put the small cube into the bowl" into an `Intent`;
`context` is the intent of the conversation's previous request, which pronouns ("put it in the bowl")
and follow-ups ("now do the same with the ball") refer to. A request that cannot be grounded raises
`GroundingError`, whose message lists the task families with an example each and the closest names.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace

from dexforge.agents.offline import words as W
from dexforge.home import DexforgeError
from dexforge.sim.catalog import Catalog, ObjectAsset

Vec2 = tuple[float, float]


class GroundingError(DexforgeError):
    """A request the offline reasoner cannot ground in the task families and the asset catalog."""

    def __init__(
        self,
        problem: str,
        closest: list[str] | None = None,
        catalog: Catalog | None = None,
        label: str = "Closest matches",
    ):
        self.problem = problem
        self.closest = list(closest or [])
        families = "; ".join(f'{f} ("{e}")' for f, e in W.EXAMPLES.items())
        parts = [problem.rstrip(".") + "."]
        if self.closest:
            parts.append(f"{label}: {', '.join(self.closest)}.")
        parts.append(f"Supported tasks: {families}.")
        if catalog is not None:
            parts.append(f"Objects: {', '.join(sorted(catalog.objects))}.")
        super().__init__(" ".join(parts))


@dataclass(frozen=True)
class Intent:
    """What a request asks for, grounded: catalog ids, scales, goal numbers and layout nudges."""

    family: str
    obj: str
    target: str | None = None
    scale: float = 1.0
    target_scale: float = 1.0
    height: float = 0.1
    angle: float = 90.0
    axis: str = "z"
    fraction: float = 0.5
    direction: Vec2 = (1.0, 0.0)
    distance: float = 0.1
    nudge: Vec2 = (0.0, 0.0)
    target_nudge: Vec2 = (0.0, 0.0)
    notes: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    asset: str
    said: str


def names_index(catalog: Catalog) -> dict[tuple[str, ...], str]:
    """Tokenised names (id and synonyms) -> catalog id; the first object to claim a name keeps it."""
    index: dict[tuple[str, ...], str] = {}
    for asset in catalog.objects.values():
        for name in asset.names():
            index.setdefault(tuple(W.tokenize(name.replace("_", " "))), asset.id)
    return index


def _lookup(words: tuple[str, ...], index: dict[tuple[str, ...], str]) -> str | None:
    """The id a phrase names, plurals included ("cubes", "boxes")."""
    if words in index:
        return index[words]
    last = words[-1]
    for cut in (1, 2):
        if last.endswith("s") and len(last) > 3 and (*words[:-1], last[:-cut]) in index:
            return index[(*words[:-1], last[:-cut])]
    return None


def find_mentions(tokens: list[str], catalog: Catalog) -> list[Mention]:
    """Object names in the tokens, longest match first; in a compound ("cabinet door") the head wins."""
    index = names_index(catalog)
    longest = max((len(k) for k in index), default=1)
    found: list[Mention] = []
    i = 0
    while i < len(tokens):
        hit = None
        for n in range(min(longest, len(tokens) - i), 0, -1):
            words = tuple(tokens[i : i + n])
            asset = _lookup(words, index)
            if asset is not None and not (words == ("can",) and _modal(tokens, i)):
                hit = Mention(i, i + n, asset, " ".join(words))
                break
        if hit is None:
            i += 1
            continue
        if found and found[-1].end == hit.start:
            hit = Mention(found[-1].start, hit.end, hit.asset, f"{found[-1].said} {hit.said}")
            found[-1] = hit
        else:
            found.append(hit)
        i = hit.end
    return found


def _modal(tokens: list[str], i: int) -> bool:
    """'can' as in "can you ...", not the drinks can."""
    return i == 0 or (i + 1 < len(tokens) and tokens[i + 1] in W.SUBJECTS)


def unknown_words(tokens: list[str], mentions: list[Mention]) -> list[str]:
    covered = {i for m in mentions for i in range(m.start, m.end)}
    return [t for i, t in enumerate(tokens) if i not in covered and not W.known_word(t) and len(t) > 1]


def closest_names(words: list[str], catalog: Catalog, n: int = 4) -> list[str]:
    """Catalog names closest to the unknown words; always a few, even when none is close."""
    names = sorted({name.lower() for a in catalog.objects.values() for name in a.names()})
    out: list[str] = []
    for word in words:
        close = difflib.get_close_matches(word, names, n=n, cutoff=0.5)
        if not close:
            close = sorted(names, key=lambda name: (-difflib.SequenceMatcher(None, word, name).ratio(), name))[:2]
        out += [c for c in close if c not in out]
    return out[:n]


def _preceding(tokens: list[str], start: int) -> str | None:
    """The first word before `start` that is not a determiner, a size, a number or a unit ("on top of")."""
    j = start - 1
    skip = (W.STOP - {"to", "at", "by"}) | set(W.SIZES) | set(W.LENGTH_UNITS) | {"top"}
    while j >= 0 and (tokens[j] in skip or W.is_number(tokens[j])):
        j -= 1
    return tokens[j] if j >= 0 else None


def _verb(tokens: list[str]) -> str | None:
    return next((W.VERBS[t] for t in tokens if t in W.VERBS), None)


def _no_verb(text: str, tokens: list[str], mentions: list[Mention], catalog: Catalog) -> GroundingError:
    missing = unknown_words(tokens, mentions)
    verb_word = missing[0] if missing else None
    nouns = missing[1:] if not mentions else []
    close = difflib.get_close_matches(verb_word, list(W.VERBS), n=2, cutoff=0.5) if verb_word else []
    problem = f'"{text}" names no action I know' + (f' ("{verb_word}" is not one)' if verb_word else "")
    if nouns:
        problem += f' and no catalog object is called "{nouns[-1]}"'
    return GroundingError(problem, close + closest_names(nouns, catalog), catalog)


def parse_request(text: str, catalog: Catalog, context: Intent | None = None) -> Intent:
    """The grounded intent of one request; raises GroundingError with the closest names."""
    tokens = W.tokenize(text)
    mentions = find_mentions(tokens, catalog)
    verb = _verb(tokens)
    places = [m for m in mentions if _is_target(tokens, m, catalog)]
    things = [m for m in mentions if m not in places]
    same = context is not None and (verb is None or bool(set(tokens) & W.SAME))
    if verb is None and not same:
        raise _no_verb(text, tokens, mentions, catalog)
    notes: list[str] = []
    family = verb if verb is not None else context.family if context is not None else ""
    first = catalog.objects[things[0].asset] if things else None
    if family == "pull":
        family = "open" if first is not None and first.articulation else "push"
    if family in ("move", "lift", "push") and places:
        family = "place"
    family = "push" if family == "move" else family

    base = replace(context, notes=()) if same and context is not None and context.family == family else None
    obj = things[0].asset if things else None
    if obj is None and context is not None and (same or set(tokens) & W.PRONOUNS):
        obj = context.obj
        notes.append(f'"it" is the {obj} of the previous request' if set(tokens) & W.PRONOUNS else f"the {obj} again")
    if base is not None and len(things) == 1 and not places and family == "place":
        asset = catalog.objects[things[0].asset]  # "the same with the plate" swaps the container
        if not asset.graspable and {"container", "surface"} & set(asset.tags):
            obj, places = base.obj, things
    if obj is None:
        missing = unknown_words(tokens, mentions)
        what = f'no catalog object is called "{missing[-1]}"' if missing else "it names no object"
        raise GroundingError(f'I cannot ground "{text}": {what}', closest_names(missing, catalog), catalog)
    base = base or Intent(family=family, obj=obj)
    target = places[0].asset if places else base.target
    intent = replace(base, family=family, obj=obj, target=target if family == "place" else None)
    if base.obj != obj:
        intent = replace(intent, scale=1.0, nudge=(0.0, 0.0))
    for m in mentions:
        if m.said.replace(" ", "_") != m.asset:
            notes.append(f'"{m.said}" is the catalog\'s {m.asset}')
    intent = read_sizes(read_numbers(intent, tokens, mentions, catalog, notes), tokens, mentions, catalog, notes)
    check_objects(intent, catalog)
    return replace(intent, notes=tuple(notes))


def _is_target(tokens: list[str], m: Mention, catalog: Catalog) -> bool:
    """A place target: after in/into/on/onto, or 'to' before a container or surface ("bring it to the bowl")."""
    before = _preceding(tokens, m.start)
    if before in W.PLACE_PREPS:
        return True
    return before == "to" and bool({"container", "surface"} & set(catalog.objects[m.asset].tags))


def size_mention(tokens: list[str], q: W.Quantity, mentions: list[Mention]) -> Mention | None:
    """The noun a length is the size of: "a 5 cm cube", "the 4 cm wide block"."""
    for m in mentions:
        between = tokens[q.start + 2 : m.start]
        if 0 < m.start - q.start <= 4 and all(t in W.SIZES or t in W.SIZE_WORDS for t in between):
            return m
    return None


def read_numbers(intent: Intent, tokens: list[str], mentions: list[Mention], catalog: Catalog, notes: list[str]):
    """Heights, angles, fractions, directions and distances (a length before a noun is its size)."""
    found = W.quantities(tokens)
    toks = set(tokens)
    for q in found:
        if q.kind == "length" and size_mention(tokens, q, mentions) is not None:
            continue
        if q.kind == "angle":
            intent = replace(intent, angle=q.value)
        elif q.kind == "fraction":
            intent = replace(intent, fraction=q.value)
        elif intent.family == "lift":
            intent = replace(intent, height=q.value)
        elif intent.family == "push":
            intent = replace(intent, distance=q.value)
        elif intent.family == "open":
            joint = catalog.objects[intent.obj].articulation[0]
            lo, hi = joint.range_at(intent.scale)
            if joint.kind == "prismatic" and hi > lo:
                intent = replace(intent, fraction=q.value / (hi - lo))
                notes.append(f"{q.value * 100:.0f} cm of the drawer's {(hi - lo) * 100:.0f} cm travel")
    if intent.family == "open" and not any(q.kind in ("fraction", "length") for q in found):
        amounts = [W.OPEN_AMOUNTS[t] for t in tokens if t in W.OPEN_AMOUNTS]
        intent = replace(intent, fraction=amounts[0]) if amounts else intent
    if intent.family == "rotate":
        if {"flip", "upside"} & toks:
            intent = replace(intent, axis="x", angle=intent.angle if found else 180.0)
        axes = [W.AXIS_WORDS[t] for t in tokens if t in W.AXIS_WORDS]
        intent = replace(intent, axis=axes[0]) if axes else intent
        counter = bool(
            {"counterclockwise", "anticlockwise"} & toks or ("clockwise" in toks and {"counter", "anti"} & toks)
        )
        if "clockwise" in toks and not counter:
            intent = replace(intent, angle=-abs(intent.angle))
        elif counter:
            intent = replace(intent, angle=abs(intent.angle))
    if intent.family == "push":
        dirs = [W.DIRECTIONS[t] for t in tokens if t in W.DIRECTIONS]
        if dirs:
            intent = replace(intent, direction=dirs[0])
        elif "pull" in toks:
            intent = replace(intent, direction=(-1.0, 0.0))
    return intent


def read_sizes(
    intent: Intent, tokens: list[str], mentions: list[Mention], catalog: Catalog, notes: list[str]
) -> Intent:
    """Size words and lengths just before a noun rescale that object (the layout clamps the result)."""
    for k, m in enumerate(mentions):
        role = "scale" if m.asset == intent.obj else "target_scale" if m.asset == intent.target else None
        if role is None:
            continue
        for tok in tokens[max(mentions[k - 1].end if k else 0, m.start - 4) : m.start]:
            if tok in W.SIZES and tok not in W.COMPARATIVES:
                notes.append(f'"{tok}" {m.asset}: scale x{W.SIZES[tok]:g}')
                intent = replace(intent, **{role: W.SIZES[tok]})
    for q in W.quantities(tokens):
        m = size_mention(tokens, q, mentions) if q.kind == "length" else None
        if m is not None and m.asset in (intent.obj, intent.target):
            scale = q.value / max(catalog.objects[m.asset].size)
            notes.append(f"a {q.value * 100:g} cm {m.asset}: scale {scale:.2f}")
            intent = replace(intent, **{"scale" if m.asset == intent.obj else "target_scale": scale})
    return intent


def check_objects(intent: Intent, catalog: Catalog) -> None:
    """Is each object fit for its role? Raises GroundingError naming the objects that are."""
    obj = catalog.objects[intent.obj]

    def refuse(problem: str, role: str) -> GroundingError:
        fit = sorted(a.id for a in catalog.objects.values() if _role_ok(a, role))[:8]
        return GroundingError(problem, fit, catalog, label="Objects that would fit")

    if intent.family in ("lift", "rotate", "place") and not obj.graspable:
        raise refuse(f"the {obj.id} is not something the hand can pick up", "graspable")
    if intent.family == "open" and not obj.articulation:
        raise refuse(f"the {obj.id} has nothing to open", "articulated")
    if intent.family == "push" and obj.fixed:
        raise refuse(f"the {obj.id} is fixed to the world and cannot be pushed", "free")
    if intent.family == "place":
        if intent.target is None:
            raise refuse("where should it go? Name a container or a surface", "target")
        target = catalog.objects[intent.target]
        if not {"container", "surface"} & set(target.tags):
            raise refuse(f"the {target.id} is neither a container nor a surface", "target")


def _role_ok(asset: ObjectAsset, role: str) -> bool:
    if role == "graspable":
        return asset.graspable
    if role == "articulated":
        return bool(asset.articulation)
    if role == "free":
        return not asset.fixed
    return bool({"container", "surface"} & set(asset.tags))
