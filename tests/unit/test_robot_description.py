"""Unit tests for the robot and scene description files.

No ROS needed: the URDFs are checked with xml.etree, and the scene is loaded
into a headless PyBullet (DIRECT) world at the poses of config/scene_default.yaml.
"""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pybullet
import pybullet_data
import pytest
import yaml
from pybullet_utils import bullet_client

REPO_ROOT = Path(__file__).resolve().parents[2]
URDF_DIR = REPO_ROOT / "urdf"
ARM_URDF = URDF_DIR / "rdt_arm6.urdf"
TABLE_URDF = URDF_DIR / "table.urdf"
OBSTACLE_URDF = URDF_DIR / "obstacle_box.urdf"
SCENE_YAML = REPO_ROOT / "config" / "scene_default.yaml"
ALL_URDFS = [ARM_URDF, TABLE_URDF, OBSTACLE_URDF]

ARM_JOINTS = [
    "shoulder_pan_joint",
    "shoulder_lift_joint",
    "elbow_joint",
    "wrist_1_joint",
    "wrist_2_joint",
    "wrist_3_joint",
]
EFFORT_LIMITS = [150.0, 150.0, 150.0, 28.0, 28.0, 28.0]

ZERO = [0.0] * 6
HOME = [0.0, -1.57, 1.57, -1.57, -1.57, 0.0]
# shoulder_pan rotated 0.5 rad from home towards +y: forearm and wrist inside the obstacle
COLLIDING = [0.5, -1.57, 1.57, -1.57, -1.57, 0.0]
# home -> SWEEP_END is a pure shoulder_pan motion whose straight line passes through the obstacle
SWEEP_END = [1.57, -1.57, 1.57, -1.57, -1.57, 0.0]

MIN_CLEARANCE = 0.002  # m, required gap between collision shapes in "free" configurations


# --------------------------------------------------------------------------- helpers
def _parse(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split()]


def _inertia_matrix(inertia: ET.Element) -> np.ndarray:
    a = {k: float(inertia.get(k, "0")) for k in ("ixx", "ixy", "ixz", "iyy", "iyz", "izz")}
    return np.array(
        [
            [a["ixx"], a["ixy"], a["ixz"]],
            [a["ixy"], a["iyy"], a["iyz"]],
            [a["ixz"], a["iyz"], a["izz"]],
        ]
    )


def _load_scene() -> dict:
    with open(SCENE_YAML, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _resolve_urdf(spec: str) -> str:
    if spec.startswith("pybullet_data:"):
        return str(Path(pybullet_data.getDataPath()) / spec.split(":", 1)[1])
    path = Path(spec)
    return str(path if path.is_absolute() else REPO_ROOT / path)


class World:
    """The scene of scene_default.yaml in its own PyBullet DIRECT client."""

    def __init__(self) -> None:
        self.scene = _load_scene()
        self.client = bullet_client.BulletClient(connection_mode=pybullet.DIRECT)
        try:
            self._build()
        except Exception:
            self.close()
            raise

    def _build(self) -> None:
        c = self.client
        c.setGravity(*self.scene["gravity"])
        robot = self.scene["robot"]
        self.arm = c.loadURDF(
            str(ARM_URDF),
            robot["base_position"],
            c.getQuaternionFromEuler(robot["base_orientation_rpy"]),
            useFixedBase=True,
        )
        self.objects = {}
        for obj in self.scene["objects"]:
            self.objects[obj["name"]] = c.loadURDF(
                _resolve_urdf(obj["urdf"]),
                obj["position"],
                c.getQuaternionFromEuler(obj["orientation_rpy"]),
                useFixedBase=bool(obj["fixed"]),
            )
        self.joint_index = {}
        self.link_index = {}
        self.parent_of = {}
        for j in range(c.getNumJoints(self.arm)):
            info = c.getJointInfo(self.arm, j)
            self.link_index[info[12].decode()] = j
            self.parent_of[j] = info[16]
            if info[2] == pybullet.JOINT_REVOLUTE:
                self.joint_index[info[1].decode()] = j
        self.arm_joints = [self.joint_index[name] for name in ARM_JOINTS]
        self.moving_links = list(range(c.getNumJoints(self.arm)))  # every link but base_link (-1)

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client = None

    def set_q(self, q) -> None:
        for j, v in zip(self.arm_joints, q):
            self.client.resetJointState(self.arm, j, v, 0.0)

    def q(self) -> np.ndarray:
        return np.array([s[0] for s in self.client.getJointStates(self.arm, self.arm_joints)])

    def min_distance(self, body: int, links=None, max_distance: float = 1.0) -> float:
        """Smallest signed distance between arm collision shapes and `body` (< 0: penetration)."""
        c = self.client
        if links is None:
            points = c.getClosestPoints(self.arm, body, max_distance)
        else:
            points = [
                pt
                for link in links
                for pt in c.getClosestPoints(self.arm, body, max_distance, linkIndexA=link)
            ]
        return min((pt[8] for pt in points), default=math.inf)

    def self_min_distance(self) -> tuple[float, tuple[int, int]]:
        """Smallest distance between arm links that are not parent/child."""
        c = self.client
        links = [-1] + self.moving_links
        best = (math.inf, (0, 0))
        for a, b in itertools.combinations(links, 2):
            if self.parent_of.get(b) == a or self.parent_of.get(a) == b:
                continue
            pts = c.getClosestPoints(self.arm, self.arm, 1.0, linkIndexA=a, linkIndexB=b)
            for pt in pts:
                if pt[8] < best[0]:
                    best = (pt[8], (a, b))
        return best


@pytest.fixture
def world():
    w = World()
    try:
        yield w
    finally:
        w.close()


# --------------------------------------------------------------------------- URDF (XML) checks
@pytest.mark.parametrize("path", ALL_URDFS, ids=lambda p: p.name)
def test_urdf_is_well_formed_tree(path):
    root = _parse(path)
    assert root.tag == "robot" and root.get("name")
    links = [link.get("name") for link in root.findall("link")]
    assert len(links) == len(set(links)), "duplicate link names"
    joints = root.findall("joint")
    children = []
    for joint in joints:
        parent = joint.find("parent").get("link")
        child = joint.find("child").get("link")
        assert parent in links, f"{joint.get('name')}: unknown parent link {parent}"
        assert child in links, f"{joint.get('name')}: unknown child link {child}"
        children.append(child)
    assert len(children) == len(set(children)), "a link has two parent joints"
    roots = [name for name in links if name not in children]
    assert len(roots) == 1, f"expected one root link, got {roots}"
    for visual in root.iter("visual"):
        geom = visual.find("geometry")
        assert geom is not None and len(geom) == 1
        assert geom[0].tag in ("box", "cylinder", "sphere"), "primitive geometry only"
    for collision in root.iter("collision"):
        assert collision.find("geometry")[0].tag in ("box", "cylinder", "sphere")


def test_arm_structure_and_names():
    root = _parse(ARM_URDF)
    assert root.get("name") == "rdt_arm6"
    links = {link.get("name") for link in root.findall("link")}
    for name in (
        "base_link",
        "shoulder_link",
        "upper_arm_link",
        "forearm_link",
        "wrist_1_link",
        "wrist_2_link",
        "wrist_3_link",
        "tool0",
    ):
        assert name in links
    children = {j.find("child").get("link") for j in root.findall("joint")}
    assert "base_link" not in children, "base_link must be the root"
    tool0_joint = [j for j in root.findall("joint") if j.find("child").get("link") == "tool0"]
    assert len(tool0_joint) == 1 and tool0_joint[0].get("type") == "fixed"
    assert tool0_joint[0].find("parent").get("link") == "wrist_3_link"
    # every moving link has both a visual and a collision geometry
    for link in root.findall("link"):
        if link.get("name") in ("tool0", "flange"):
            continue
        assert link.find("visual") is not None, link.get("name")
        assert link.find("collision") is not None, link.get("name")


def test_arm_joints_and_limits():
    root = _parse(ARM_URDF)
    revolute = [j for j in root.findall("joint") if j.get("type") == "revolute"]
    assert [j.get("name") for j in revolute] == ARM_JOINTS
    for joint, effort_expected in zip(revolute, EFFORT_LIMITS):
        name = joint.get("name")
        limit = joint.find("limit")
        assert limit is not None, name
        lower, upper = float(limit.get("lower")), float(limit.get("upper"))
        velocity, effort = float(limit.get("velocity")), float(limit.get("effort"))
        assert math.isfinite(lower) and math.isfinite(upper) and lower < upper, name
        assert lower <= -math.pi + 1e-3 and upper >= math.pi - 1e-3, \
            f"{name}: less than +-pi of travel"
        assert velocity > 0 and math.isfinite(velocity), name
        assert effort > 0 and math.isfinite(effort), name
        assert effort == pytest.approx(effort_expected), name
        axis = np.array(_floats(joint.find("axis").get("xyz")))
        assert np.linalg.norm(axis) == pytest.approx(1.0), name
        dynamics = joint.find("dynamics")
        assert dynamics is not None and float(dynamics.get("damping")) >= 0.0, name


@pytest.mark.parametrize("path", ALL_URDFS, ids=lambda p: p.name)
def test_inertials_are_physical(path):
    root = _parse(path)
    inertial_links = [link for link in root.findall("link") if link.find("inertial") is not None]
    assert inertial_links
    for link in inertial_links:
        name = link.get("name")
        inertial = link.find("inertial")
        mass = float(inertial.find("mass").get("value"))
        assert mass > 0.0, name
        inertia = _inertia_matrix(inertial.find("inertia"))
        eig = np.linalg.eigvalsh(inertia)
        assert eig.min() > 0.0, f"{name}: inertia not positive definite {eig}"
        # triangle inequality on the principal moments (holds for any real body)
        i1, i2, i3 = eig
        tol = 1e-9 * eig.max()
        assert i1 + i2 >= i3 - tol and i1 + i3 >= i2 - tol and i2 + i3 >= i1 - tol, name
        # and on the diagonal as written
        ixx, iyy, izz = np.diag(inertia)
        assert ixx + iyy >= izz - tol and ixx + izz >= iyy - tol and iyy + izz >= ixx - tol, name


def test_arm_masses_realistic():
    root = _parse(ARM_URDF)
    masses = {
        link.get("name"): float(link.find("inertial/mass").get("value"))
        for link in root.findall("link")
        if link.find("inertial") is not None
    }
    assert 18.0 <= sum(masses.values()) <= 22.0, masses
    assert masses["upper_arm_link"] == max(masses.values())
    for frame in ("tool0", "flange"):
        assert masses.get(frame, 0.0) < 0.01, "frame links must be (nearly) massless"


# --------------------------------------------------------------------------- scene file
def test_scene_yaml_schema():
    scene = _load_scene()
    assert scene["world_frame"] == "world"
    assert scene["gravity"] == pytest.approx([0.0, 0.0, -9.81])
    assert len(scene["robot"]["base_position"]) == 3
    assert len(scene["robot"]["base_orientation_rpy"]) == 3
    names = [obj["name"] for obj in scene["objects"]]
    assert names == ["floor", "table", "obstacle"]
    for obj in scene["objects"]:
        assert set(obj) == {"name", "urdf", "position", "orientation_rpy", "fixed"}
        assert len(obj["position"]) == 3 and len(obj["orientation_rpy"]) == 3
        assert isinstance(obj["fixed"], bool)
        assert Path(_resolve_urdf(obj["urdf"])).is_file(), obj["urdf"]
    # the robot stands on the table top
    table_top = 0.75
    assert scene["robot"]["base_position"][2] == pytest.approx(table_top)
    obstacle = next(obj for obj in scene["objects"] if obj["name"] == "obstacle")
    assert obstacle["position"][2] == pytest.approx(table_top)


# --------------------------------------------------------------------------- PyBullet world
def test_pybullet_loads_scene(world):
    c = world.client
    assert c.getNumJoints(world.arm) == 8  # 6 revolute + tool0 + flange
    assert set(world.joint_index) == set(ARM_JOINTS)
    assert "tool0" in world.link_index
    # PyBullet gives a link without <inertial> 1 kg; the frame links must stay negligible
    total = sum(c.getDynamicsInfo(world.arm, j)[0] for j in world.moving_links)
    assert total < 17.5  # moving links only (base_link is fixed and reports 0)
    assert c.getDynamicsInfo(world.arm, world.link_index["tool0"])[0] < 0.01
    for name, lim in zip(ARM_JOINTS, EFFORT_LIMITS):
        assert c.getJointInfo(world.arm, world.joint_index[name])[10] == pytest.approx(lim)


def test_home_pose_tool_points_down(world):
    c = world.client
    world.set_q(HOME)
    state = c.getLinkState(world.arm, world.link_index["tool0"], computeForwardKinematics=True)
    base_pos = np.array(world.scene["robot"]["base_position"])
    rel = np.array(state[4]) - base_pos
    assert rel == pytest.approx([0.49, 0.13, 0.49], abs=2e-3)
    z_axis = np.array(c.getMatrixFromQuaternion(state[5])).reshape(3, 3)[:, 2]
    assert z_axis == pytest.approx([0.0, 0.0, -1.0], abs=2e-3)


@pytest.mark.parametrize("q", [ZERO, HOME, SWEEP_END], ids=["zero", "home", "sweep_end"])
def test_free_configurations_have_no_contacts(world, q):
    world.set_q(q)
    c = world.client
    c.performCollisionDetection()
    # base_link is bolted to the table top, so only the moving links are checked against the table
    d_table = world.min_distance(world.objects["table"], links=world.moving_links)
    d_obstacle = world.min_distance(world.objects["obstacle"])
    d_floor = world.min_distance(world.objects["floor"])
    assert d_table > MIN_CLEARANCE, f"arm touches the table: {d_table:.4f} m"
    assert d_obstacle > MIN_CLEARANCE, f"arm touches the obstacle: {d_obstacle:.4f} m"
    assert d_floor > MIN_CLEARANCE
    assert not c.getClosestPoints(world.arm, world.objects["obstacle"], 0.0)
    d_self, pair = world.self_min_distance()
    assert d_self > MIN_CLEARANCE, f"self collision between links {pair}: {d_self:.4f} m"


def test_adjacent_links_never_touch(world):
    """Parent/child collision shapes are clear, so no joint can jam on its neighbour.

    The housings at each joint are coaxial with it, so their clearance does not depend
    on the pose. The only parent/child contact is the forearm folding back onto the
    upper arm's shoulder housing for |elbow| > ~2.89 rad, a genuine self-collision,
    so random poses keep |elbow| <= 2.8 rad.
    """
    c = world.client
    rng = np.random.default_rng(0)
    configs = [ZERO, HOME, COLLIDING, SWEEP_END]
    for _ in range(20):
        q = rng.uniform(-math.pi, math.pi, 6)
        q[2] = rng.uniform(-2.8, 2.8)
        configs.append(list(q))
    for q in configs:
        world.set_q(q)
        for child, parent in world.parent_of.items():
            pts = c.getClosestPoints(world.arm, world.arm, 0.05, linkIndexA=parent,
                                     linkIndexB=child)
            d = min((pt[8] for pt in pts), default=math.inf)
            assert d > 0.0, f"links {parent} and {child} touch at q={np.round(q, 3)}: {d:.4f} m"


def test_colliding_configuration_hits_obstacle(world):
    world.set_q(COLLIDING)
    d = world.min_distance(world.objects["obstacle"])
    assert d < -0.02, f"expected a clear penetration, got {d:.4f} m"
    assert world.client.getClosestPoints(world.arm, world.objects["obstacle"], 0.0)
    # and it is the obstacle, not the table, that is hit
    assert world.min_distance(world.objects["table"], links=world.moving_links) > MIN_CLEARANCE


def test_sweep_from_home_passes_through_obstacle(world):
    distances = []
    for s in np.linspace(0.0, 1.0, 41):
        world.set_q((1.0 - s) * np.array(HOME) + s * np.array(SWEEP_END))
        distances.append(world.min_distance(world.objects["obstacle"]))
    assert distances[0] > MIN_CLEARANCE and distances[-1] > MIN_CLEARANCE
    assert min(distances) < -0.02


def test_effort_limits_hold_home_against_gravity(world):
    c = world.client
    c.setTimeStep(1.0 / 1000.0)
    world.set_q(HOME)
    c.setJointMotorControlArray(
        world.arm,
        world.arm_joints,
        pybullet.POSITION_CONTROL,
        targetPositions=HOME,
        targetVelocities=[0.0] * 6,
        forces=EFFORT_LIMITS,
    )
    worst = 0.0
    for _ in range(1000):  # 1 s of simulated time at 1 kHz
        c.stepSimulation()
        worst = max(worst, float(np.max(np.abs(world.q() - np.array(HOME)))))
    assert worst < 0.01, f"arm sagged {worst:.4f} rad from home"
