"""TaskSpec: everything needed to build a task's scene, as data that round-trips through YAML.

A task's description has three parts, the same for a person and a model: what to do, what is
randomised, and what counts as success. The spec holds the hand and its mount, the objects (catalog
asset, scale, pose, randomisation, initial joint positions), the success predicates (all must hold),
the episode length and the seed.

Frames: z is up, the ground is z = 0, the workspace is centred on the origin. Object poses give the
centre of the object's bounding box; `euler` angles are degrees, extrinsic x-y-z.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dexforge.home import DexforgeError
from dexforge.sim.catalog import Catalog, UnknownAsset, default_catalog

Vec3 = tuple[float, float, float]


class SpecError(DexforgeError):
    """A task spec that cannot be read or does not validate."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pose(_Model):
    pos: Vec3 = Field(default=(0.0, 0.0, 0.0), description="Position in metres (world frame, z up).")
    euler: Vec3 = Field(default=(0.0, 0.0, 0.0), description="Orientation, degrees, extrinsic x-y-z.")


class PoseNoise(_Model):
    """Per-reset randomisation of an object's pose, uniform in +-range."""

    xy: float = Field(default=0.0, ge=0.0, le=0.5, description="Half-range of the x and y offsets, metres.")
    yaw: float = Field(default=0.0, ge=0.0, le=180.0, description="Half-range of the yaw offset, degrees.")


class HandSpec(_Model):
    asset: str = Field(default="shadow_hand", description="Catalog id of the hand.")
    mount: Literal["floating", "ur5e", "panda"] = Field(
        default="floating",
        description="floating: an actuated 6-DoF wrist that can move anywhere in the workspace; "
        "ur5e/panda: the hand on an arm standing at `arm_base`.",
    )
    pose: Pose = Field(
        default=Pose(pos=(0.0, 0.0, 0.25)),
        description="Initial palm pose. At zero angles the palm faces down and the fingers point to +x.",
    )
    arm_base: Vec3 = Field(default=(-0.55, 0.0, 0.0), description="Where an arm mount stands, metres.")


class ObjectSpec(_Model):
    name: str | None = Field(default=None, description="Instance name, unique in the task; defaults to the asset id.")
    asset: str = Field(description="Catalog id or synonym (see `dexforge sim catalog`), or a mesh/URDF path.")
    scale: Annotated[float, Field(gt=0.0, le=10.0)] = Field(default=1.0, description="Uniform scale factor.")
    pose: Pose = Field(default=Pose(), description="Initial pose of the bounding-box centre.")
    fixed: bool | None = Field(default=None, description="Weld to the world; default from the catalog.")
    randomize: PoseNoise = Field(default=PoseNoise(), description="Per-reset pose randomisation.")
    joints: dict[str, float] = Field(default_factory=dict, description="Initial articulation joint positions.")

    @property
    def key(self) -> str:
        return self.name or self.asset


class _Predicate(_Model):
    object: str = Field(description="Name of the object the predicate is about.")


class Lifted(_Predicate):
    kind: Literal["lifted"] = "lifted"
    height: float = Field(default=0.1, gt=0.0, le=1.0, description="Rise of the object's centre, metres.")


class Inside(_Predicate):
    kind: Literal["inside"] = "inside"
    container: str = Field(description="Name of an object tagged `container`.")


class On(_Predicate):
    kind: Literal["on"] = "on"
    surface: str = Field(description="Name of the object the first one should rest on.")


class Rotated(_Predicate):
    kind: Literal["rotated"] = "rotated"
    axis: Literal["x", "y", "z"] = Field(default="z", description="World axis of the rotation.")
    angle: float = Field(default=90.0, ge=-360.0, le=360.0, description="Signed rotation, degrees.")
    tolerance: float = Field(default=15.0, gt=0.0, le=90.0, description="Allowed error, degrees.")


class Opened(_Predicate):
    kind: Literal["opened"] = "opened"
    joint: str | None = Field(default=None, description="Articulation joint; default the object's first.")
    fraction: float = Field(default=0.5, gt=0.0, le=1.0, description="Fraction of the joint's range.")


class Touching(_Predicate):
    kind: Literal["touching"] = "touching"
    min_fingers: int = Field(default=1, ge=1, le=6, description="Fingers (and palm) in contact, at least.")
    parts: list[Literal["thumb", "index", "middle", "ring", "little", "palm"]] = Field(
        default_factory=list,
        description="Hand parts that must all be among them, e.g. [thumb] for a grasp with the thumb opposing.",
    )


class Held(_Predicate):
    kind: Literal["held"] = "held"
    duration: float = Field(default=1.0, gt=0.0, le=60.0, description="Seconds in a grasp, off the ground.")


class Reached(_Predicate):
    kind: Literal["reached"] = "reached"
    offset: Vec3 = Field(default=(0.0, 0.0, 0.0), description="Goal for the palm centre minus the object centre, m.")
    tolerance: float = Field(default=0.02, gt=0.0, le=0.5, description="Allowed distance from the goal, m.")


class Moved(_Predicate):
    kind: Literal["moved"] = "moved"
    offset: Vec3 = Field(
        default=(0.1, 0.0, 0.0),
        description="Displacement of the object's centre since the episode began, metres (z ignored).",
    )
    tolerance: float = Field(
        default=0.03, gt=0.0, le=0.5, description="Allowed xy distance from that displacement, metres."
    )


Predicate = Annotated[
    Lifted | Inside | On | Rotated | Opened | Touching | Held | Reached | Moved, Field(discriminator="kind")
]
PREDICATE_KINDS = ("lifted", "inside", "on", "rotated", "opened", "touching", "held", "reached", "moved")


class TaskSpec(_Model):
    """A dexterous-hand task: scene, success, episode length."""

    name: str = Field(default="task", pattern=r"^[A-Za-z0-9_.-]+$", description="Short identifier.")
    description: str = Field(default="", description="What to do; what is randomised; what counts as success.")
    hand: HandSpec = Field(default=HandSpec(), description="The hand and its mount.")
    objects: list[ObjectSpec] = Field(default_factory=list, description="Objects in the scene.")
    success: list[Predicate] = Field(default_factory=list, description="All must hold at once for success.")
    episode_length: int = Field(default=200, ge=1, le=100_000, description="Control steps per episode.")
    dt: float = Field(default=0.01, gt=0.0, le=0.05, description="Physics step, seconds.")
    seed: int = Field(default=0, ge=0, description="Seed of the per-reset randomisation.")

    @field_validator("hand")
    @classmethod
    def _known_hand(cls, hand: HandSpec) -> HandSpec:
        try:
            asset = _catalog().hand(hand.asset)
        except UnknownAsset as exc:
            raise ValueError(f"hand.asset: {exc}") from None
        if hand.mount not in asset.mounts:
            raise ValueError(f"hand.mount: hand {asset.id!r} supports mounts {list(asset.mounts)}, not {hand.mount!r}")
        return hand

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        catalog = _catalog()
        names: list[str] = []
        for i, obj in enumerate(self.objects):
            try:
                asset = catalog.object(obj.asset)
            except DexforgeError as exc:  # UnknownAsset, or BadAsset from a user mesh/URDF file
                raise ValueError(f"objects.{i}.asset: {exc}") from None
            if obj.key in names:
                raise ValueError(f"objects.{i}.name: {obj.key!r} is used twice; give each object a unique name")
            names.append(obj.key)
            joints = {j.name for j in asset.articulation}
            for joint in obj.joints:
                if joint not in joints:
                    raise ValueError(
                        f"objects.{i}.joints: {asset.id!r} has no joint {joint!r}; joints: {sorted(joints) or 'none'}"
                    )
        for i, pred in enumerate(self.success):
            refs = [pred.object] + [getattr(pred, f) for f in ("container", "surface") if hasattr(pred, f)]
            for ref in refs:
                if ref not in names:
                    raise ValueError(f"success.{i}: no object named {ref!r}; objects: {names or 'none'}")
            if isinstance(pred, Inside) and "container" not in self.asset_of(pred.container, catalog).tags:
                raise ValueError(f"success.{i}: {pred.container!r} is not a container")
            if isinstance(pred, Opened):
                asset = self.asset_of(pred.object, catalog)
                joints = [j.name for j in asset.articulation]
                if not joints:
                    raise ValueError(f"success.{i}: {pred.object!r} has no joint to open")
                if pred.joint is not None and pred.joint not in joints:
                    raise ValueError(f"success.{i}: {pred.object!r} has no joint {pred.joint!r}; joints: {joints}")
        return self

    def object_spec(self, name: str) -> ObjectSpec:
        for obj in self.objects:
            if obj.key == name:
                return obj
        raise KeyError(name)

    def asset_of(self, name: str, catalog: Catalog | None = None):
        return (catalog or _catalog()).object(self.object_spec(name).asset)

    # YAML -------------------------------------------------------------------------------------
    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=False), sort_keys=False)

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml())
        return path

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>") -> TaskSpec:
        try:
            data = yaml.load(text, Loader=_SpecLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise SpecError(_one_line(f"{source}:{where}: malformed YAML: {problem}")) from None
        if not isinstance(data, dict):
            raise SpecError(f"{source}: a task spec is a YAML mapping with keys {sorted(cls.model_fields)}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SpecError(_one_line(f"{source}: {describe_validation_error(exc)}")) from None

    @classmethod
    def load(cls, path: Path | str) -> TaskSpec:
        path = Path(path)
        if not path.is_file():
            raise SpecError(f"no such spec file: {path}")
        return cls.from_yaml(path.read_text(), source=str(path))


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, `field.path: message`, joined with '; ' (a model can act on it)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "literal_error" or err["type"] == "union_tag_invalid":
            msg = msg.replace("Input should be", "allowed:")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}" if loc and not msg.startswith(loc) else msg)
    return "; ".join(parts)


def _one_line(message: str) -> str:
    """Collapse runs of whitespace (newlines from user text included) so an error is one line."""
    return re.sub(r"\s+", " ", message).strip()


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false are booleans, so `kind: on` stays a string.

    YAML 1.1 (PyYAML's default) also reads yes/no/on/off as booleans; here they are plain strings.
    """


_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _catalog() -> Catalog:
    return default_catalog()


def load_yaml(text: str):
    """YAML as specs and plans read it: only true/false are booleans (a bare `on` stays the string 'on')."""
    return yaml.load(text, Loader=_SpecLoader)
