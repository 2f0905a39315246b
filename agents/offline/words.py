"""The offline reasoner's vocabulary: words for actions, sizes, directions, units and numbers.

Everything here reads a person's request, never a model's answer (models answer in schemas). A request is
lower-cased and split into words and numbers; number words ("forty five") become numbers; a number with a
unit becomes a `Quantity` in SI units (metres, degrees, fractions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z]+")

# verb -> task family; "move"-like verbs are decided by what follows (a container: place; a direction: push)
VERBS: dict[str, str] = {
    **dict.fromkeys(("pick", "lift", "grab", "raise", "grasp", "hold", "hoist", "elevate", "take", "get"), "lift"),
    **dict.fromkeys(("put", "place", "drop", "set", "insert", "stash", "pack", "store", "deposit", "load"), "place"),
    **dict.fromkeys(("rotate", "turn", "spin", "twist", "reorient", "flip", "revolve"), "rotate"),
    **dict.fromkeys(("open", "unlatch"), "open"),
    **dict.fromkeys(("push", "slide", "shove", "nudge", "roll", "drag"), "push"),
    **dict.fromkeys(("move", "bring", "carry", "transfer", "shift"), "move"),
    "pull": "pull",
}
EXAMPLES: dict[str, str] = {
    "lift": "pick up the mug",
    "place": "put the apple in the bowl",
    "rotate": "rotate the cube 90 degrees in the hand",
    "open": "open the drawer",
    "push": "push the can to the left",
}
PLACE_PREPS = {"in": "in", "into": "in", "inside": "in", "within": "in", "on": "on", "onto": "on", "upon": "on"}
SIZES = {"tiny": 0.6, "mini": 0.7, "small": 0.75, "little": 0.75, "large": 1.3, "big": 1.3, "huge": 1.6}
SIZES |= {"giant": 1.6, "smaller": 0.8, "tinier": 0.8, "bigger": 1.25, "larger": 1.25}
COMPARATIVES = {"smaller", "tinier", "bigger", "larger"}
SIZE_WORDS = {"wide", "long", "tall", "high", "across", "sized", "big", "large"}
DIRECTIONS: dict[str, tuple[float, float]] = {  # world xy; a person stands behind the hand, facing +x
    **dict.fromkeys(("left", "leftward", "leftwards"), (0.0, 1.0)),
    **dict.fromkeys(("right", "rightward", "rightwards"), (0.0, -1.0)),
    **dict.fromkeys(("forward", "forwards", "ahead", "away", "further", "farther"), (1.0, 0.0)),
    **dict.fromkeys(("back", "backward", "backwards", "toward", "towards", "closer", "nearer"), (-1.0, 0.0)),
}
DIRECTION_NAMES = {(0.0, 1.0): "left", (0.0, -1.0): "right", (1.0, 0.0): "forward", (-1.0, 0.0): "back"}
OPEN_AMOUNTS = {"halfway": 0.5, "half": 0.5, "fully": 0.9, "completely": 0.9, "wide": 0.9, "all": 0.9}
OPEN_AMOUNTS |= {
    "slightly": 0.25,
    "bit": 0.25,
    "little": 0.25,
    "partly": 0.25,
    "partially": 0.25,
    "ajar": 0.25,
    "quarter": 0.25,
}
AXIS_WORDS = {"x": "x", "y": "y", "z": "z", "vertical": "z", "yaw": "z", "roll": "x", "pitch": "y"}
PRONOUNS = {"it", "that", "this", "them"}
SAME = {"same", "again", "too", "also", "likewise", "instead"}
SUBJECTS = {"you", "i", "we", "they", "he", "she", "u"}
SCENE = {"table", "ground", "floor", "counter", "hand", "fingers", "palm", "air", "side", "top", "bottom", "axis"}
STOP = {"the", "a", "an", "this", "that", "these", "those", "my", "your", "its", "some", "please", "now", "then"}
STOP |= {"and", "of", "with", "up", "down", "by", "to", "from", "around", "about", "at", "for", "can", "could"}
STOP |= {"would", "you", "me", "let", "lets", "s", "do", "is", "be", "so", "that", "cm", "mm", "m", "just", "over"}
STOP |= {"then", "there", "here", "high", "higher", "lower", "times", "way", "degrees", "degree", "deg"}

_ONES = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
_ONES |= {"nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "eighteen": 18}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80}
_TENS |= {"ninety": 90}
LENGTH_UNITS = {"cm": 0.01, "centimeter": 0.01, "centimeters": 0.01, "centimetre": 0.01, "centimetres": 0.01}
LENGTH_UNITS |= {"mm": 0.001, "millimeter": 0.001, "millimeters": 0.001, "millimetre": 0.001}
LENGTH_UNITS |= {"millimetres": 0.001, "m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0}
LENGTH_UNITS |= {"inch": 0.0254, "inches": 0.0254}
ANGLE_UNITS = {"degree": 1.0, "degrees": 1.0, "deg": 1.0, "degs": 1.0, "rad": 57.29578, "radians": 57.29578}
TURNS = {"quarter": 90.0, "half": 180.0, "full": 360.0, "whole": 360.0}


@dataclass(frozen=True)
class Quantity:
    kind: Literal["length", "angle", "fraction"]
    value: float
    """Metres, degrees, or a fraction in [0, 1]."""
    start: int
    """Token index of the number."""


def tokenize(text: str) -> list[str]:
    """Lower-case words and numbers; number words become numbers ("a hundred and eighty" -> "a", "180")."""
    text = text.lower().replace("°", " degrees ").replace("%", " percent ")
    raw = _TOKEN.findall(text)
    numbers = _ONES | _TENS
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] not in numbers and raw[i] != "hundred":
            out.append(raw[i])
            i += 1
            continue
        total = 0
        while i < len(raw):
            tok = raw[i]
            if tok in numbers:
                total += numbers[tok]
            elif tok == "hundred":
                total = max(total, 1) * 100
            elif not (tok == "and" and total and i + 1 < len(raw) and raw[i + 1] in numbers):
                break
            i += 1
        out.append(str(total))
    return out


def quantities(tokens: list[str]) -> list[Quantity]:
    """Numbers with units, and turn words ("a quarter turn"), in order."""
    found: list[Quantity] = []
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if _is_number(tok):
            value = float(tok)
            if nxt in LENGTH_UNITS:
                found.append(Quantity("length", value * LENGTH_UNITS[nxt], i))
            elif nxt in ANGLE_UNITS:
                found.append(Quantity("angle", value * ANGLE_UNITS[nxt], i))
            elif nxt in ("percent", "pc"):
                found.append(Quantity("fraction", value / 100.0, i))
        elif tok in TURNS and nxt in ("turn", "turns", "rotation", "revolution"):
            found.append(Quantity("angle", TURNS[tok], i))
    return found


def _is_number(tok: str) -> bool:
    return tok.replace(".", "", 1).isdigit()


def is_number(tok: str) -> bool:
    return _is_number(tok)


def known_word(tok: str) -> bool:
    """A word the vocabulary knows (not a candidate for an unknown object name)."""
    return (
        tok in VERBS
        or tok in STOP
        or tok in SIZES
        or tok in DIRECTIONS
        or tok in PLACE_PREPS
        or tok in OPEN_AMOUNTS
        or tok in AXIS_WORDS
        or tok in PRONOUNS
        or tok in SAME
        or tok in SCENE
        or tok in LENGTH_UNITS
        or tok in ANGLE_UNITS
        or tok in TURNS
        or _is_number(tok)
        or tok in {"percent", "turn", "turns", "rotation", "clockwise", "counterclockwise", "anticlockwise"}
        or tok in {"counter", "anti", "upside", "degrees", "halfway", "inside", "out", "open", "wide", "make"}
        or tok in {"use", "replace", "swap", "switch", "change", "try", "instead", "what", "if", "how", "doing"}
    )
