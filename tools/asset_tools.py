"""The proposer's tools: find assets by words and size, an asset's details, validate a spec, static checks.

All of them read the catalog and the spec schema only (no simulator), so they answer at once.
"""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dexforge.tools.base import RoleTool, Scope, ToolError, ToolResult


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


# find_assets ------------------------------------------------------------------------------------------------
class FindAssetsArgs(_Args):
    query: str = Field(
        default="",
        description="Words to look for in ids, synonyms, descriptions and tags ('mug', 'fruit', 'container'); "
        "empty lists everything.",
    )
    tag: str | None = Field(default=None, description="Only assets with this tag (graspable, container, ...).")
    min_size_m: float | None = Field(default=None, ge=0, description="Largest extent at least this, metres.")
    max_size_m: float | None = Field(default=None, gt=0, description="Largest extent at most this, metres.")


class AssetRow(BaseModel):
    id: str = Field(description="Catalog id: what a TaskSpec's `asset` names.")
    names: list[str] = Field(description="Id and synonyms.")
    tags: list[str]
    size_m: tuple[float, float, float] = Field(description="Extents x, y, z at scale 1, metres.")
    mass_kg: float | None
    description: str = ""


class FindAssetsResult(ToolResult):
    query: str
    matches: list[AssetRow] = Field(description="Assets that match every filter, best first.")
    closest: list[str] = Field(default_factory=list, description="With no match: ids whose names are nearest.")
    by_tag: dict[str, list[str]] = Field(
        default_factory=dict, description="With no match: the catalog's ids per tag, to pick one of the same use."
    )

    def summary(self) -> str:
        if self.matches:
            rows = [
                f"{r.id}: {', '.join(r.names[1:]) or '-'} [{', '.join(r.tags)}] "
                f"{' x '.join(f'{s * 100:.1f}' for s in r.size_m)} cm, {r.mass_kg if r.mass_kg else '?'} kg"
                for r in self.matches
            ]
            return f"{len(rows)} match(es) for '{self.query}':\n" + "\n".join(rows)
        tags = "; ".join(f"{t}: {', '.join(ids)}" for t, ids in self.by_tag.items())
        return (
            f"no catalog asset matches '{self.query}'. Closest names: {', '.join(self.closest) or 'none'}. "
            f"By use: {tags}. Ground the request in the closest entry with the same use and say so in your reasoning."
        )


def _row(asset) -> AssetRow:
    return AssetRow(
        id=asset.id,
        names=list(asset.names()),
        tags=list(asset.tags),
        size_m=tuple(round(float(s), 4) for s in asset.size),
        mass_kg=asset.mass,
        description=asset.description,
    )


def _score(asset, words: list[str]) -> int:
    """How many of the query's words the asset's names, tags and description hold (names count double)."""
    names = " ".join(asset.names()).lower()
    text = f"{names} {' '.join(asset.tags)} {asset.description.lower()}"
    return sum((2 if w in names else 1) for w in words if w in text)


def find_assets(args: FindAssetsArgs, scope: Scope) -> FindAssetsResult:
    from dexforge.sim.catalog import default_catalog

    catalog = default_catalog()
    words = [w for w in args.query.lower().replace(",", " ").split() if w not in ("a", "an", "the", "of")]
    scored = []
    for oid in catalog.object_ids():
        asset = catalog.object(oid)
        biggest = max(asset.size)
        if args.tag and args.tag not in asset.tags:
            continue
        if args.min_size_m is not None and biggest < args.min_size_m:
            continue
        if args.max_size_m is not None and biggest > args.max_size_m:
            continue
        score = _score(asset, words) if words else 1
        if score > 0:
            scored.append((-score, oid, asset))
    matches = [_row(a) for _, _, a in sorted(scored)]
    if matches:
        return FindAssetsResult(query=args.query, matches=matches)
    names = {n.lower(): oid for oid in catalog.object_ids() for n in catalog.object(oid).names()}
    close: list[str] = []
    for w in words or [args.query]:
        for n in difflib.get_close_matches(w, list(names), n=3, cutoff=0.5):
            if names[n] not in close:
                close.append(names[n])
    by_tag: dict[str, list[str]] = {}
    for oid in catalog.object_ids():
        for t in catalog.object(oid).tags:
            by_tag.setdefault(t, []).append(oid)
    return FindAssetsResult(query=args.query, matches=[], closest=close, by_tag=by_tag)


# asset_info -------------------------------------------------------------------------------------------------
class AssetInfoArgs(_Args):
    asset: str = Field(description="Catalog id or synonym.")


class AssetInfoResult(ToolResult):
    asset: AssetRow
    shape: str
    friction: float
    fixed: bool = Field(description="Welded to the world (furniture).")
    graspable: bool
    joints: list[dict] = Field(default_factory=list, description="Articulated joints: name, kind, range.")
    inner_m: tuple[float, float, float] | None = Field(default=None, description="A container's inner cavity.")
    resting_z_m: float = Field(description="z of its centre when it rests on the ground at scale 1.")

    def summary(self) -> str:
        a = self.asset
        size = " x ".join(f"{s * 100:.1f}" for s in a.size_m)
        text = (
            f"{a.id} ({', '.join(a.names[1:]) or 'no synonyms'}): {a.description or '-'}; {size} cm, "
            f"{a.mass_kg or '?'} kg, {self.shape}, friction {self.friction:g}, tags [{', '.join(a.tags)}], "
            f"{'graspable' if self.graspable else 'not graspable'}{', fixed' if self.fixed else ''}; "
            f"rests at z = {self.resting_z_m:.3f} m"
        )
        if self.inner_m:
            text += f"; cavity {' x '.join(f'{s * 100:.1f}' for s in self.inner_m)} cm"
        if self.joints:
            text += "; joints: " + ", ".join(f"{j['name']} ({j['kind']} {j['range']})" for j in self.joints)
        return text


def asset_info(args: AssetInfoArgs, scope: Scope) -> AssetInfoResult:
    from dexforge.home import DexforgeError
    from dexforge.sim.catalog import default_catalog

    try:
        asset = default_catalog().object(args.asset)
    except DexforgeError as exc:
        raise ToolError(f"{exc}; call find_assets to search by words") from None
    return AssetInfoResult(
        asset=_row(asset),
        shape=asset.shape,
        friction=asset.friction,
        fixed=asset.fixed,
        graspable=asset.graspable,
        joints=[{"name": j.name, "kind": j.kind, "range": [j.lower, j.upper]} for j in asset.articulation],
        inner_m=asset.inner,
        resting_z_m=round(float(asset.size[2]) / 2, 4),
    )


# validate_spec and static_checks ----------------------------------------------------------------------------
class SpecArgs(_Args):
    spec_yaml: str = Field(description="The whole TaskSpec as YAML.")


class ValidateSpecResult(ToolResult):
    name: str
    objects: list[str] = Field(description="Instance names of the objects.")
    predicates: list[str] = Field(description="The success predicates, as kind(object).")

    def summary(self) -> str:
        return f"valid: {self.name}; objects {', '.join(self.objects)}; success {', '.join(self.predicates)}"


def parse_spec(spec_yaml: str):
    """The TaskSpec in `spec_yaml`, or a ToolError that names the bad field."""
    from dexforge.home import DexforgeError
    from dexforge.sim.spec import TaskSpec, describe_validation_error

    try:
        return TaskSpec.from_yaml(spec_yaml)
    except ValidationError as exc:
        raise ToolError(f"invalid task spec: {describe_validation_error(exc)}. Fix that field.") from None
    except DexforgeError as exc:
        raise ToolError(f"invalid task spec: {exc}. Fix that field.") from None


def validate_spec(args: SpecArgs, scope: Scope) -> ValidateSpecResult:
    spec = parse_spec(args.spec_yaml)
    return ValidateSpecResult(
        name=spec.name,
        objects=[o.key for o in spec.objects],
        predicates=[f"{p.kind}({getattr(p, 'object', '')})" for p in spec.success],
    )


class StaticChecksResult(ToolResult):
    ok: bool = Field(description="No error findings.")
    findings: list[dict] = Field(description="check, severity, subject, message, values.")

    def summary(self) -> str:
        if not self.findings:
            return "static checks (reach, scale, workspace): nothing found"
        lines = [f"{f['severity']}: {f['check']} {f['subject']}: {f['message']}" for f in self.findings]
        return ("no errors; " if self.ok else "errors found; ") + "\n".join(lines)


def static_checks(args: SpecArgs, scope: Scope) -> StaticChecksResult:
    from dexforge.sim.checks import static_checks as run

    spec = parse_spec(args.spec_yaml)
    found = run(spec)
    return StaticChecksResult(
        ok=not any(f.severity == "error" for f in found), findings=[f.model_dump() for f in found]
    )


TOOLS = [
    RoleTool(
        "find_assets",
        "Search the asset catalog by words (id, synonym, description, tag such as 'fruit' or 'container') and "
        "size. Use it to ground every object of a request: only catalog ids can appear in a TaskSpec. Returns "
        "matches with sizes (cm) and masses; with no match, the closest names and the catalog's ids by use, so "
        "that you can pick an entry with the same use (say so in your reasoning).",
        FindAssetsArgs,
        FindAssetsResult,
        find_assets,
    ),
    RoleTool(
        "asset_info",
        "Everything about one catalog asset: size, mass, shape, friction, tags, whether it can be grasped, a "
        "container's cavity, an articulated object's joints, and the z of its centre when resting on the ground. "
        "Errors name the closest ids.",
        AssetInfoArgs,
        AssetInfoResult,
        asset_info,
    ),
    RoleTool(
        "validate_spec",
        "Check that a TaskSpec (YAML) is well-formed and grounded in the catalog, without simulating. Use it "
        "before answering; an error names the field to fix and the closest valid values.",
        SpecArgs,
        ValidateSpecResult,
        validate_spec,
    ),
    RoleTool(
        "static_checks",
        "Geometry checks of a TaskSpec without a simulator: reach (the palm can get to each object), scale "
        "(graspable objects neither too small, too large nor too heavy for the hand) and workspace (on the "
        "table). Findings carry numbers and say what would fix them.",
        SpecArgs,
        StaticChecksResult,
        static_checks,
    ),
]
