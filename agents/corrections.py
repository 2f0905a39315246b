"""Apply a critic's typed corrections to a TaskSpec by code (DESIGN.md: the model never rewrites a spec).

`apply_corrections(spec, corrections)` applies Move, Scale, Rotate, Replace and Remove in order and
returns a new spec, validated again by `TaskSpec` itself (catalog ids, names, predicates). A correction
that names no object, removes an object a success predicate needs, or leaves the spec invalid raises
`CorrectionError` with a message saying what to do instead; the input spec is never changed.

Replace keeps the object's name (the old key becomes the explicit name when it had none, so that the
predicates still find it), its pose and its randomisation; the scale goes back to 1 and the joints are
dropped, since both belong to the old asset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from dexforge.agents.schemas import Correction, Move, Remove, Replace, Rotate, Scale
from dexforge.home import DexforgeError
from dexforge.sim.catalog import UnknownAsset, default_catalog
from dexforge.sim.spec import TaskSpec, describe_validation_error


class CorrectionError(DexforgeError):
    """A correction that cannot be applied to the spec it was written for."""


def predicate_objects(spec: TaskSpec) -> set[str]:
    """Every object name a success predicate refers to (object, container, surface)."""
    names: set[str] = set()
    for pred in spec.success:
        names.add(pred.object)
        for field in ("container", "surface"):
            ref = getattr(pred, field, None)
            if ref is not None:
                names.add(ref)
    return names


def _index(objects: list[dict[str, Any]], name: str, what: str) -> int:
    keys = [o.get("name") or o["asset"] for o in objects]
    if name not in keys:
        raise CorrectionError(f"{what}: no object named {name!r}; objects: {', '.join(keys) or 'none'}")
    return keys.index(name)


def _apply_one(data: dict[str, Any], correction: Correction, protected: set[str]) -> None:
    objects: list[dict[str, Any]] = data["objects"]
    what = f"{correction.kind} {correction.object!r}"
    i = _index(objects, correction.object, what)
    obj = objects[i]
    if isinstance(correction, Move):
        obj["pose"] = {**obj["pose"], "pos": tuple(float(v) for v in correction.pos)}
    elif isinstance(correction, Scale):
        obj["scale"] = float(correction.scale)
    elif isinstance(correction, Rotate):
        obj["pose"] = {**obj["pose"], "euler": tuple(float(v) for v in correction.euler)}
    elif isinstance(correction, Replace):
        try:
            asset = default_catalog().object(correction.asset)
        except UnknownAsset as exc:
            raise CorrectionError(f"{what}: {exc}") from None
        obj["name"] = obj.get("name") or obj["asset"]
        obj["asset"] = asset.id
        obj["scale"] = 1.0
        obj["joints"] = {}
    elif isinstance(correction, Remove):
        if correction.object in protected:
            raise CorrectionError(
                f"{what}: the success predicates name {correction.object!r}; move or replace it instead of removing it"
            )
        objects.pop(i)
    else:  # pragma: no cover - the Correction union is closed
        raise CorrectionError(f"unknown correction {correction!r}")


def apply_corrections(spec: TaskSpec, corrections: Sequence[Correction]) -> TaskSpec:
    """A new spec with `corrections` applied in order; raises CorrectionError, never returns an invalid spec."""
    if not corrections:
        return spec
    data = spec.model_dump(mode="python")
    protected = predicate_objects(spec)
    for correction in corrections:
        _apply_one(data, correction, protected)
    try:
        return TaskSpec.model_validate(data)
    except ValidationError as exc:
        kinds = ", ".join(f"{c.kind} {c.object!r}" for c in corrections)
        raise CorrectionError(f"after {kinds} the spec is invalid: {describe_validation_error(exc)}") from None
