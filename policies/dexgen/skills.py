"""What DexGen's in-hand experts do, and on which objects, without importing torch or Genesis (the CLI and
the agent's tools read it): the mode labels, the skills, the default objects, and "name@scale" assets."""

from __future__ import annotations

MODES = {"hold": 0, "rotate": 1, "release": 2}
"""Mode labels (DexGenConfig.n_modes = 3): the data's intent, given to the diffusion model."""
SPIN_AXES = ("normal", "thumb", "fingers")
"""Palm axes a spin expert turns the object about (rewards.templates.PALM_AXES): out of the palm, toward the
thumb, along the fingers."""
SKILLS = ("hold", *(f"spin_{a}" for a in SPIN_AXES))
DEFAULT_ASSETS = ("cube", "ball", "can", "cube@1.2")
"""The objects of `dexforge dexgen collect` and the benchmark: a box, a sphere, a tall cylinder and a larger box.
The duck and the bunny (irregular meshes) gave 12-17 held starts of 64 and hold experts at 0% after 200k steps."""
DEFAULT_SKILLS = ("hold", "spin_normal")
"""The experts trained per object by default: holding, and turning about the palm normal."""


def skill_mode(skill: str) -> int:
    """The mode label of a skill: "hold" -> MODES["hold"], "spin_<axis>" -> MODES["rotate"]."""
    if skill == "hold":
        return MODES["hold"]
    if skill in SKILLS:
        return MODES["rotate"]
    raise ValueError(f"unknown expert skill {skill!r}: one of {', '.join(SKILLS)}")


def parse_asset(asset: str) -> tuple[str, float]:
    """ "cube" -> ("cube", 1.0); "cube@1.2" -> ("cube", 1.2): a catalog object, optionally scaled."""
    name, _, scale = asset.partition("@")
    try:
        value = float(scale) if scale else 1.0
    except ValueError:
        raise ValueError(f"object {asset!r}: the scale after '@' must be a number, e.g. cube@1.2") from None
    if not 0.2 <= value <= 5.0:
        raise ValueError(f"object {asset!r}: scale {value} is outside 0.2-5")
    return name, value
