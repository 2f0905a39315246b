"""Asset files: procedural URDFs, shipped Genesis meshes and user imports (no Genesis import, fast)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from dexforge.sim.assets import procedural, shipped, user
from dexforge.sim.assets.user import BadAsset, import_asset, inspect_mesh
from dexforge.sim.catalog import BUILTIN_OBJECTS, Catalog, ObjectAsset

GENERATED = [a for a in BUILTIN_OBJECTS if a.generator]
BY_ID = {a.id: a for a in BUILTIN_OBJECTS}


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXFORGE_HOME", str(tmp_path / "home"))


def _pose(node: ET.Element | None) -> np.ndarray:
    out = np.eye(4)
    if node is not None:
        rpy = [float(v) for v in node.get("rpy", "0 0 0").split()]
        out[:3, :3] = Rotation.from_euler("xyz", rpy).as_matrix()  # URDF: extrinsic roll, pitch, yaw
        out[:3, 3] = [float(v) for v in node.get("xyz", "0 0 0").split()]
    return out


def link_poses(robot: ET.Element) -> dict[str, np.ndarray]:
    joints = {j.find("child").get("link"): j for j in robot.findall("joint")}
    poses: dict[str, np.ndarray] = {}

    def pose(name: str) -> np.ndarray:
        if name not in joints:
            return np.eye(4)
        joint = joints[name]
        return pose(joint.find("parent").get("link")) @ _pose(joint.find("origin"))

    for link in robot.findall("link"):
        poses[link.get("name")] = pose(link.get("name"))
    return poses


def primitives(robot: ET.Element, links: set[str] | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(kind, dims, pose in the root frame) of every collision primitive, joints at zero."""
    poses, out = link_poses(robot), []
    for link in robot.findall("link"):
        if links is not None and link.get("name") not in links:
            continue
        for col in link.findall("collision"):
            shape = next(iter(col.find("geometry")))
            if shape.tag == "box":
                dims = np.array([float(v) for v in shape.get("size").split()])
            else:
                assert shape.tag == "cylinder", shape.tag
                dims = np.array([float(shape.get("radius")), float(shape.get("length"))])
            out.append((shape.tag, dims, poses[link.get("name")] @ _pose(col.find("origin"))))
    return out


def corner_points(kind: str, dims: np.ndarray, pose: np.ndarray) -> np.ndarray:
    if kind == "box":
        local = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * dims / 2
    else:
        a = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        circle = np.column_stack([dims[0] * np.cos(a), dims[0] * np.sin(a)])
        local = np.concatenate([np.column_stack([circle, np.full(64, z)]) for z in (-dims[1] / 2, dims[1] / 2)])
    return local @ pose[:3, :3].T + pose[:3, 3]


def bounds(prims: list[tuple[str, np.ndarray, np.ndarray]]) -> np.ndarray:
    pts = np.concatenate([corner_points(*p) for p in prims])
    return np.stack([pts.min(axis=0), pts.max(axis=0)])


def inside_any(points: np.ndarray, prims: list[tuple[str, np.ndarray, np.ndarray]]) -> np.ndarray:
    hit = np.zeros(len(points), dtype=bool)
    for kind, dims, pose in prims:
        local = (points - pose[:3, 3]) @ pose[:3, :3]
        if kind == "box":
            hit |= np.all(np.abs(local) < dims / 2, axis=1)
        else:
            hit |= (np.hypot(local[:, 0], local[:, 1]) < dims[0]) & (np.abs(local[:, 2]) < dims[1] / 2)
    return hit


def parse(asset: ObjectAsset, scale: float = 1.0) -> ET.Element:
    return ET.parse(procedural.urdf_for(asset, scale)).getroot()


def test_generators_cover_the_catalog() -> None:
    assert {a.generator for a in GENERATED} <= set(procedural.generators())


@pytest.mark.parametrize("scale", [1.0, 1.5])
@pytest.mark.parametrize("asset", GENERATED, ids=lambda a: a.id)
def test_generated_urdf(asset: ObjectAsset, scale: float) -> None:
    robot = parse(asset, scale)
    assert robot.tag == "robot"
    joints = {j.get("name"): j for j in robot.findall("joint")}
    links = {link.get("name") for link in robot.findall("link")}
    for art in asset.articulation:
        joint = joints[art.name]
        assert joint.get("type") == art.kind
        limit = joint.find("limit")
        expected = art.upper * scale if art.kind == "prismatic" else art.upper
        assert float(limit.get("upper")) == pytest.approx(expected, abs=1e-5)
        assert float(joint.find("dynamics").get("damping")) > 0
        assert art.handle_link in links
    total = 0.0
    for link in robot.findall("link"):
        mass = float(link.find("inertial/mass").get("value"))
        inertia = link.find("inertial/inertia")
        value = {k: float(v) for k, v in inertia.attrib.items()}
        tensor = np.array([[value.get(f"i{a}{b}", value.get(f"i{b}{a}")) for b in "xyz"] for a in "xyz"])
        assert mass > 0 and np.all(np.linalg.eigvalsh(tensor) > 0), link.get("name")
        assert all(v.find("material/color") is not None for v in link.findall("visual"))
        total += mass
    assert total == pytest.approx(asset.mass * scale**3, rel=1e-4)  # 6 significant digits in the file
    box = bounds(primitives(robot))
    np.testing.assert_allclose(box[1] - box[0], np.array(asset.size) * scale, atol=0.005)
    np.testing.assert_allclose(box.mean(axis=0), 0.0, atol=0.005)  # root origin = bounding-box centre


def test_urdf_files_are_cached_by_content(tmp_path: Path) -> None:
    bowl = BY_ID["bowl"]
    first, again, bigger = procedural.urdf_for(bowl), procedural.urdf_for(bowl), procedural.urdf_for(bowl, 1.5)
    assert first == again and first != bigger and first.parent == bigger.parent
    assert sorted(p.suffix for p in first.parent.iterdir()) == [".urdf", ".urdf"]  # no temporary file left


def test_unknown_generator_names_the_known_ones() -> None:
    odd = BY_ID["bowl"].model_copy(update={"generator": "teapot"})
    with pytest.raises(procedural.UnknownGenerator, match="bowl"):
        procedural.urdf_for(odd)


@pytest.mark.parametrize(("asset_id", "cube"), [("bowl", 0.05), ("mug", 0.04)])
def test_container_cavity_is_open(asset_id: str, cube: float) -> None:
    prims = primitives(parse(BY_ID[asset_id]))
    _, dims, pose = next(p for p in prims if p[0] == "cylinder")  # the base disc
    floor, rim = pose[2, 3] + dims[1] / 2, bounds(prims)[1][2]
    assert floor + cube <= rim + 1e-6
    grid = np.linspace(-cube / 2 + 5e-4, cube / 2 - 5e-4, 7)
    points = np.array([[x, y, z + cube / 2] for x in grid for y in grid for z in grid])
    points += [pose[0, 3], pose[1, 3], floor]
    assert not inside_any(points, prims).any()


def _moved(robot: ET.Element, link: str, joint_name: str, q: float) -> np.ndarray:
    """Points of a link (and the handle on it) with one joint moved to q."""
    joint = next(j for j in robot.findall("joint") if j.get("name") == joint_name)
    axis = np.array([float(v) for v in joint.find("axis").get("xyz").split()])
    origin = _pose(joint.find("origin"))[:3, 3]
    pts = np.concatenate([corner_points(*p) for p in primitives(robot, {link, "handle"})])
    if joint.get("type") == "prismatic":
        return pts + q * axis
    return (pts - origin) @ Rotation.from_rotvec(q * axis).as_matrix().T + origin


def test_drawer_slides_out_and_handle_stands_off() -> None:
    asset = BY_ID["cabinet_drawer"]
    robot = parse(asset)
    closed, opened = _moved(robot, "drawer", "drawer_joint", 0.0), _moved(robot, "drawer", "drawer_joint", 0.1)
    assert opened[:, 0].min() == pytest.approx(closed[:, 0].min() - 0.1)
    bar = bounds([p for p in primitives(robot, {"handle"}) if p[1][1] > 0.1])  # the long horizontal bar
    front = bounds(primitives(robot, {"drawer"}))[0][0]
    assert bar[0][0] == pytest.approx(-asset.size[0] / 2) and front - bar[1][0] == pytest.approx(0.03)


def test_door_swings_out_towards_minus_x() -> None:
    robot = parse(BY_ID["cabinet_door"])
    closed, opened = _moved(robot, "door", "door_joint", 0.0), _moved(robot, "door", "door_joint", 1.0)
    assert opened[:, 0].mean() < closed[:, 0].mean() - 0.05
    body = bounds(primitives(robot, {"body"}))
    assert opened[:, 0].max() <= body[0][0] + 1e-6  # never swings into the carcass
    handle = bounds(primitives(robot, {"handle"}))
    assert handle[1][1] < 0 and handle[1][2] - handle[0][2] > 0.1  # vertical bar near the free (-y) edge


def test_microwave_door_swings_out_beside_its_panel() -> None:
    robot = parse(BY_ID["microwave"])
    closed, opened = _moved(robot, "door", "door_joint", 0.0), _moved(robot, "door", "door_joint", 1.2)
    assert opened[:, 0].mean() < closed[:, 0].mean() - 0.05
    assert opened[:, 0].max() <= closed[:, 0].max() + 1e-6  # never behind its closed back face
    door = bounds(primitives(robot, {"door"}))
    assert door[0][1] > -BY_ID["microwave"].size[1] / 2 + 0.1  # the control panel keeps the -y side


def test_chest_lid_lifts_its_front() -> None:
    robot = parse(BY_ID["chest"])
    closed, opened = _moved(robot, "lid", "lid_joint", 0.0), _moved(robot, "lid", "lid_joint", 1.0)
    assert opened[:, 2].max() > closed[:, 2].max() + 0.15  # the front edge rises
    assert opened[:, 0].min() > closed[:, 0].min() + 0.05  # and swings back over the box


GRIPPED = [a for a in BUILTIN_OBJECTS if any(j.grip for j in a.articulation)]


@pytest.mark.parametrize("asset", GRIPPED, ids=lambda a: a.id)
def test_handle_grip_names_the_bars_outer_face(asset: ObjectAsset) -> None:
    """The catalog's grip (what planned pulls aim at) is where the generated handle bar really is."""
    robot = parse(asset)
    grip = asset.articulation[0].grip
    handle = primitives(robot, {"handle"})
    bar = max(handle, key=lambda p: max(p[1]))  # the bar is the longest part
    lo, hi = bounds([bar])
    normal = np.array(grip.normal)
    face = np.where(normal < 0, lo, np.where(normal > 0, hi, (lo + hi) / 2))
    np.testing.assert_allclose(face, grip.face, atol=1e-3)
    along = np.array(grip.fingers)
    assert abs(along @ (hi - lo)) < 0.02  # the fingers lie across the bar, not along it


# ---- user meshes ----


def write_mesh(path: Path, mesh: trimesh.Trimesh) -> Path:
    mesh.export(path)
    return path


def test_inspect_good_mesh(tmp_path: Path) -> None:
    report = inspect_mesh(write_mesh(tmp_path / "block.obj", trimesh.creation.box(extents=(0.08, 0.05, 0.03))))
    assert report.watertight and not report.problems and not report.warnings
    np.testing.assert_allclose(report.extents, (0.08, 0.05, 0.03), atol=1e-6)
    assert report.unit == "m" and report.volume_m3 == pytest.approx(1.2e-4)
    asset = import_asset(Path(report.path))
    assert asset.shape == "mesh" and asset.id == "block" and asset.mass == pytest.approx(1.2e-4 * 600)
    assert user.asset_frame(asset).center == pytest.approx((0.0, 0.0, 0.0))


def test_millimetre_mesh_is_guessed_as_mm(tmp_path: Path) -> None:
    path = write_mesh(tmp_path / "Part 7.stl", trimesh.creation.box(extents=(80.0, 50.0, 30.0)))
    report = inspect_mesh(path)
    assert report.unit == "mm" and report.to_metres == 0.001
    asset = import_asset(path, tags=("graspable",))
    assert asset.id == "part_7" and asset.size == pytest.approx((0.08, 0.05, 0.03))
    assert import_asset(path, scale=0.0005).size == pytest.approx((0.04, 0.025, 0.015))


@pytest.mark.parametrize(("extent", "unit"), [(0.1, "m"), (1.5, "m"), (12.0, "cm"), (300.0, "mm"), (1e5, "unknown")])
def test_guess_unit(extent: float, unit: str) -> None:
    got, factor = user.guess_unit(extent)
    assert got == unit and 0.005 <= extent * factor <= 2.0


def test_open_mesh_is_accepted_with_a_warning(tmp_path: Path) -> None:
    box = trimesh.creation.box(extents=(0.1, 0.1, 0.1))
    path = write_mesh(tmp_path / "open.ply", trimesh.Trimesh(box.vertices, box.faces[:-2]))
    report = inspect_mesh(path)
    assert not report.watertight and any("watertight" in w for w in report.warnings)
    assert import_asset(path).mass == pytest.approx(0.001 * 300)


def test_glb_size_is_in_the_upright_frame(tmp_path: Path) -> None:
    path = write_mesh(tmp_path / "thing.glb", trimesh.creation.box(extents=(0.08, 0.05, 0.03)))
    asset = import_asset(path)
    assert asset.size == pytest.approx((0.08, 0.03, 0.05))  # Genesis maps y-up (x, y, z) to (x, -z, y)
    assert user.asset_frame(asset).zup is False


def test_catalog_imports_a_path_and_avoids_builtin_ids(tmp_path: Path) -> None:
    path = write_mesh(tmp_path / "cube.obj", trimesh.creation.box(extents=(0.05, 0.05, 0.05)))
    asset = Catalog(BUILTIN_OBJECTS).object(str(path))
    assert asset.id == "cube_user" and asset.file == str(path.resolve())


URDF_MISSING_MESH = """<robot name="r"><link name="a"><visual><geometry>
<mesh filename="meshes/missing.obj"/></geometry></visual></link></robot>"""


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("thing.xyz", b"v 0 0 0\n", "unsupported file type '.xyz' for thing.xyz; supported: .obj, .stl"),
        ("garbage.obj", bytes(range(256)) * 4, "not a valid OBJ file"),
        ("garbage.stl", bytes(range(256)) * 4, "not a valid STL file"),
        ("garbage.glb", bytes(range(256)) * 4, "cannot parse as GLB"),
        ("empty.obj", b"", "empty file"),
        ("words.obj", b"hello\nworld\n", "0 faces"),
        ("flat.obj", b"v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3\nf 1 3 4\n", "zero thickness"),
        ("hand.urdf", URDF_MISSING_MESH.encode(), "mesh file not found: meshes/missing.obj"),
        ("broken.urdf", b"<robot><link name='a'></robot>", "malformed URDF XML"),
        ("nolinks.urdf", b"<robot name='r'></robot>", "no <link>"),
        ("other.urdf", b"<mujoco/>", "expected <robot>"),
    ],
)
def test_bad_files_raise_one_clear_line(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadAsset) as caught:
        import_asset(path)
    message = str(caught.value)
    assert expected in message and "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadAsset, match=r"no such file: .*nothing\.obj"):
        import_asset(tmp_path / "nothing.obj")


def test_urdf_import_measures_primitives_and_meshes(tmp_path: Path) -> None:
    write_mesh(tmp_path / "part.obj", trimesh.creation.box(extents=(0.1, 0.1, 0.1)))
    (tmp_path / "toy.urdf").write_text(
        """<robot name="toy"><link name="base"><inertial><mass value="0.5"/></inertial>
        <collision><geometry><box size="0.2 0.1 0.05"/></geometry></collision></link>
        <link name="top"><collision><geometry><mesh filename="part.obj"/></geometry></collision></link>
        <joint name="j" type="fixed"><parent link="base"/><child link="top"/><origin xyz="0 0 0.1"/></joint>
        </robot>"""
    )
    asset = import_asset(tmp_path / "toy.urdf", asset_id="toy")
    assert asset.shape == "urdf" and asset.mass == pytest.approx(0.5)
    assert asset.size == pytest.approx((0.2, 0.1, 0.175))
    assert user.asset_frame(asset).center == pytest.approx((0.0, 0.0, 0.0625))


# ---- shipped Genesis meshes ----


def test_shipped_ids_and_names_do_not_collide() -> None:
    objects = shipped.shipped_objects()
    assert len(objects) == len(shipped.SHIPPED)
    builtin_names = {n.lower() for a in BUILTIN_OBJECTS for n in a.names()}
    names = [n.lower() for a in objects for n in a.names()]
    assert len(names) == len(set(names)) and not builtin_names & set(names)


@pytest.mark.parametrize("entry", shipped.SHIPPED, ids=lambda e: e.id)
def test_shipped_mesh_measurements(entry: shipped.Shipped) -> None:
    asset = next(a for a in shipped.shipped_objects() if a.id == entry.id)
    mesh = trimesh.load(asset.file, force="mesh")
    np.testing.assert_allclose(mesh.extents, entry.raw_extents, rtol=1e-3)
    np.testing.assert_allclose(mesh.bounds.mean(axis=0), entry.raw_center, atol=1e-3 * max(entry.raw_extents))
    ex, ey, ez = shipped.upright(tuple(mesh.extents), entry.zup)
    np.testing.assert_allclose(np.abs([ex, ey, ez]) * asset.file_scale, asset.size, rtol=0.1)
    assert 0.005 < max(asset.size) < 0.5 and asset.mass > 0
    frame = user.asset_frame(asset)
    center = np.array(shipped.upright(tuple(mesh.bounds.mean(axis=0)), entry.zup)) * asset.file_scale
    assert frame.zup == entry.zup and np.allclose(frame.center, center, atol=1e-3)
