"""Motions the twin generates itself: limit-respecting joint moves, and inverse kinematics.

:func:`plan_joint_motion` turns "go to these joint positions" into a trajectory a
joint_trajectory_controller executes as planned: every joint follows the same quintic
time-scaling, so all joints start and end together, and the duration is chosen so that no joint
exceeds its (scaled) URDF velocity limit or the acceleration limit. :func:`solve_ik` finds the
joint positions that put a link at a pose, with the physics world's inverse kinematics on a
private world (the predictor's). Pure numpy, no ROS; PyBullet only through PhysicsWorld.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from reverse_digital_twin.core.goal import GoalPoint, TrajectoryGoal
from reverse_digital_twin.core.physics import PhysicsWorld
from reverse_digital_twin.core.robot_model import JointLimits, quaternion_from_rpy
from reverse_digital_twin.core.robot_model import quaternion_multiply, rotate

#: Peak of ds/dtau of the quintic time-scaling s(tau) = 10 tau^3 - 15 tau^4 + 6 tau^5 (tau = 0.5).
QUINTIC_PEAK_VELOCITY = 1.875
#: Peak of |d2s/dtau2| of the same scaling: 10/sqrt(3) (at tau = (3 -+ sqrt(3))/6).
QUINTIC_PEAK_ACCELERATION = 10.0 / math.sqrt(3.0)
#: Default acceleration limit of a generated motion (rad/s^2 | m/s^2): URDFs carry none.
DEFAULT_ACCELERATION_LIMIT = 2.0
#: Waypoint spacing of a generated trajectory (s).
SAMPLE_PERIOD = 0.1
#: A start position this far outside the URDF limits is solver noise at a limit stop and is
#: planned from the limit (rad | m); farther out is an error.
START_LIMIT_SLACK = 1e-3


def _quintic(tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """s, ds/dtau, d2s/dtau2 of the rest-to-rest quintic time-scaling at tau in [0, 1]."""
    s = tau ** 3 * (10.0 + tau * (-15.0 + 6.0 * tau))
    ds = 30.0 * tau ** 2 * (1.0 + tau * (-2.0 + tau))
    dds = 60.0 * tau * (1.0 + tau * (-3.0 + 2.0 * tau))
    return s, ds, dds


def per_joint(value: float | Mapping[str, float], joints: Sequence[str], what: str) -> np.ndarray:
    """One positive finite limit per joint, from one number for all or a joint -> value map."""
    if isinstance(value, Mapping):
        missing = [j for j in joints if j not in value]
        if missing:
            raise ValueError(f'{what}: no value for joints {missing}')
        out = np.array([float(value[j]) for j in joints])
    else:
        out = np.full(len(joints), float(value))
    bad = [j for j, v in zip(joints, out) if not (v > 0.0 and math.isfinite(v))]
    if bad:
        raise ValueError(f'{what} must be a positive finite number; not so for joints {bad}')
    return out


def check_timing(joints: Sequence[str], limits: Mapping[str, JointLimits], velocity_scaling: float,
                 min_duration: float, sample_period: float) -> None:
    """Raise ValueError, saying what is wrong, unless every joint has limits and the timing
    settings make sense (shared by the straight-line and the planned motions)."""
    unknown = [j for j in joints if j not in limits]
    if unknown:
        raise ValueError(f'no limits for joints {unknown}; known joints: {sorted(limits)}')
    if not (isinstance(velocity_scaling, (int, float)) and 0.0 < velocity_scaling <= 1.0):
        raise ValueError(f'velocity_scaling must be in (0, 1], got {velocity_scaling}')
    if not (min_duration >= 0.0 and math.isfinite(min_duration)):
        raise ValueError(f'min_duration must be a finite number >= 0 s, got {min_duration}')
    if not (sample_period > 0.0 and math.isfinite(sample_period)):
        raise ValueError(f'sample_period must be a positive number of s, got {sample_period}')


def plan_joint_motion(start: np.ndarray, goal: np.ndarray, joints: Sequence[str],
                      limits: Mapping[str, JointLimits], velocity_scaling: float = 0.5,
                      acceleration_limit: float | Mapping[str, float] =
                      DEFAULT_ACCELERATION_LIMIT,
                      min_duration: float = 0.5,
                      sample_period: float = SAMPLE_PERIOD) -> TrajectoryGoal:
    """A synchronized rest-to-rest joint motion from ``start`` to ``goal``.

    Every joint follows q(t) = start + (goal - start) * s(t / T) with the quintic time-scaling
    s(tau) = 10 tau^3 - 15 tau^4 + 6 tau^5 (zero velocity and acceleration at both ends), so all
    joints start and end together. The duration T is the smallest that keeps every joint within
    ``velocity_scaling`` x its URDF velocity limit and within ``acceleration_limit``, at least
    ``min_duration``, rounded up to a whole number of ``sample_period``.

    The trajectory is sampled every ``sample_period`` with positions, velocities and
    accelerations, so the controller's quintic segments reproduce the time-scaling exactly.
    The first waypoint is at t = sample_period, not the start pose at t = 0: the controller
    blends from the state it picks the goal up in (exactly the quintic when that is ``start`` at
    rest), and a slightly moved robot is not refused for a first point that is not where it is.
    The last waypoint is exactly ``goal`` with zero velocity and acceleration.

    Args:
        start: current positions (n,), in ``joints`` order (rad | m).
        goal: target positions (n,), in ``joints`` order.
        joints: joint names; every one needs an entry in ``limits``.
        limits: URDF limits per joint.
        velocity_scaling: fraction of the URDF velocity limits, in (0, 1].
        acceleration_limit: rad/s^2 (m/s^2), one for all joints or per joint name.
        min_duration: shortest motion (s), also for a zero-length one.
        sample_period: waypoint spacing (s).

    Raises:
        ValueError: naming the joint, for a size mismatch, an unknown joint, a non-finite
            position, a goal outside the URDF position limits, a start far outside them, or a
            velocity_scaling outside (0, 1].
    """
    joints = list(joints)
    n = len(joints)
    start = np.asarray(start, dtype=float).reshape(-1)
    goal = np.asarray(goal, dtype=float).reshape(-1)
    if n == 0:
        raise ValueError('no joints to move')
    if len(set(joints)) != n:
        raise ValueError(f'duplicated joint names in {joints}')
    if len(start) != n or len(goal) != n:
        raise ValueError(f'{n} joints {joints} but {len(start)} start and {len(goal)} goal '
                         'positions')
    check_timing(joints, limits, velocity_scaling, min_duration, sample_period)
    for j, q in zip(joints, goal):
        if not math.isfinite(q):
            raise ValueError(f'goal position of joint {j} is not finite: {q}')
        lim = limits[j]
        if not lim.lower <= q <= lim.upper:
            raise ValueError(f'goal position of joint {j} is {q:.4f}, outside its URDF limits '
                             f'[{lim.lower:.4f}, {lim.upper:.4f}]')
    start = start.copy()
    for k, (j, q) in enumerate(zip(joints, start)):
        if not math.isfinite(q):
            raise ValueError(f'start position of joint {j} is not finite: {q}')
        lim = limits[j]
        if not lim.lower - START_LIMIT_SLACK <= q <= lim.upper + START_LIMIT_SLACK:
            raise ValueError(f'start position of joint {j} is {q:.4f}, outside its URDF limits '
                             f'[{lim.lower:.4f}, {lim.upper:.4f}]')
        start[k] = min(max(q, lim.lower), lim.upper)
    accel = per_joint(acceleration_limit, joints, 'acceleration_limit')
    vmax = np.array([velocity_scaling * limits[j].velocity for j in joints])
    delta = goal - start
    distance = np.abs(delta)
    with np.errstate(divide='ignore', invalid='ignore'):
        t_velocity = np.where(np.isfinite(vmax), QUINTIC_PEAK_VELOCITY * distance / vmax, 0.0)
    t_acceleration = np.sqrt(QUINTIC_PEAK_ACCELERATION * distance / accel)
    duration = max(float(np.max(t_velocity)), float(np.max(t_acceleration)), min_duration,
                   sample_period)
    count = math.ceil(duration / sample_period - 1e-9)
    duration = count * sample_period
    points = []
    for k in range(1, count + 1):
        t = k * sample_period
        if k == count:
            points.append(GoalPoint(round(t, 9), goal.tolist(), [0.0] * n, [0.0] * n))
            break
        s, ds, dds = _quintic(np.array(t / duration))
        q = start + delta * s
        points.append(GoalPoint(round(t, 9), q.tolist(), (delta * ds / duration).tolist(),
                                (delta * dds / duration ** 2).tolist()))
    return TrajectoryGoal(joint_names=joints, points=points)


# --- inverse kinematics -----------------------------------------------------------------------

def _angle_between(a: np.ndarray, b: np.ndarray) -> float:
    """Rotation angle (rad) between two unit quaternions (x, y, z, w)."""
    dot = min(1.0, abs(float(np.dot(a, b))))
    return 2.0 * math.acos(dot)


def _unit_quaternion(orientation: Sequence[float]) -> np.ndarray:
    q = np.asarray(orientation, dtype=float).reshape(-1)
    if q.shape != (4,) or not np.all(np.isfinite(q)):
        raise ValueError('orientation must be a finite quaternion (x, y, z, w), got '
                         f'{orientation}')
    norm = float(np.linalg.norm(q))
    if norm < 1e-6:
        raise ValueError('orientation quaternion is zero; give None for position only')
    return q / norm


def pose_to_world(world: PhysicsWorld, position: Sequence[float],
                  orientation: Sequence[float] | None, frame: str | None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """A pose in the scene's world frame (None/'' or its name) or the robot's root link frame,
    expressed in the world frame (the PyBullet frame: the robot stands at the scene's base pose).

    Raises:
        ValueError: a non-finite position or orientation, or an unknown frame.
    """
    p = np.asarray(position, dtype=float).reshape(-1)
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        raise ValueError(f'position must be 3 finite numbers (m), got {position}')
    q = None if orientation is None else _unit_quaternion(orientation)
    scene = world.scene
    if not frame or frame == scene.world_frame:
        return p, q
    if frame == world.model.root_link:
        base_q = quaternion_from_rpy(*scene.robot_orientation_rpy)
        p = np.asarray(scene.robot_position, dtype=float) + rotate(base_q, p)
        if q is not None:
            q = quaternion_multiply(base_q, q)
            q /= np.linalg.norm(q)
        return p, q
    raise ValueError(f'unknown frame {frame!r}: give the pose in the world frame '
                     f'{scene.world_frame!r} or the robot root link {world.model.root_link!r}')


def _nearest_equivalent(value: float, seed: float, lim: JointLimits, revolute: bool) -> float:
    """The 2*pi-equivalent of a revolute joint's value closest to the seed, within limits."""
    if not revolute or not math.isfinite(seed):
        return value
    turns = round((seed - value) / (2.0 * math.pi))
    for k in sorted(range(turns - 1, turns + 2), key=lambda k: abs(k - turns)):
        candidate = value + 2.0 * math.pi * k
        if lim.lower <= candidate <= lim.upper and abs(candidate - seed) < abs(value - seed):
            return candidate
    return value


def solve_ik(world: PhysicsWorld, tip_link: str, position: Sequence[float],
             orientation: Sequence[float] | None, joints: Sequence[str], seed: np.ndarray,
             iterations: int = 200, tolerance: float = 1e-3,
             orientation_tolerance: float = 1e-2, frame: str | None = None,
             restarts: int = 0) -> np.ndarray:
    """Joint positions that put ``tip_link`` at a pose, by PyBullet's inverse kinematics.

    Use a private world (the predictor's), never the live twin's: the robot is moved there to
    iterate. Each iteration resets the robot to the current solution and asks PyBullet again
    (with the URDF limits, and the seed as rest pose so the solution stays near it), until the
    link frame (as getLinkState computes it) is within ``tolerance`` of the position and, if an
    orientation is given, ``orientation_tolerance`` of it. Joints not in ``joints`` (e.g. a
    gripper's fingers) stay where they are. The world's state is saved before and restored
    after, so the caller (the predictor) finds it unchanged.

    Args:
        world: the private PhysicsWorld.
        tip_link: the link to place (a link of the robot other than its root).
        position: (3,) m, in ``frame``.
        orientation: quaternion (x, y, z, w) in ``frame``, or None for position only.
        joints: the joints to solve for (the controller's), in the order of the result.
        seed: (n,) start positions for ``joints``, and the rest pose.
        iterations: at most this many solve/reset rounds.
        tolerance: position tolerance (m).
        orientation_tolerance: orientation tolerance (rad).
        frame: None/'' or the scene's world frame, or the robot's root link.
        restarts: when the seed does not converge, try this many more starts drawn within
            +-pi of the seed (a fixed random sequence: the same question gets the same answer)
            and keep the first that converges.

    Returns:
        (n,) positions for ``joints``, within their URDF limits.

    Raises:
        ValueError: an unknown link, joint or frame, bad numbers, or
            'unreachable: tip error X m after N iterations'.
    """
    joints = list(joints)
    model = world.model
    if tip_link not in world.link_index:
        raise ValueError(f'tip link {tip_link!r} is not a link of robot {model.name!r} that can '
                         f'be placed; its links are {sorted(world.link_index)}')
    movable = {j.name: j for j in model.movable_joints}
    unknown = [j for j in joints if j not in movable]
    if unknown:
        raise ValueError(f'joints {unknown} are not movable joints of robot {model.name!r}')
    seed = np.asarray(seed, dtype=float).reshape(-1)
    if len(seed) != len(joints) or not np.all(np.isfinite(seed)):
        raise ValueError(f'seed must be {len(joints)} finite positions, got {seed.tolist()}')
    if iterations < 1:
        raise ValueError(f'iterations must be >= 1, got {iterations}')
    target_p, target_q = pose_to_world(world, position, orientation, frame)
    dofs = world.dof_joints
    solved = {j: k for k, j in enumerate(joints)}
    lims = [movable[j].limits for j in joints]
    with world.preserved_state():
        current = dict(zip(dofs, world.joint_positions(dofs)))
        current.update({j: float(np.clip(q, lim.lower, lim.upper))
                        for j, q, lim in zip(joints, seed, lims)})
        lower, upper, ranges, rest, damping = [], [], [], [], []
        for j in dofs:
            lim = movable[j].limits
            if j in solved:
                lo = lim.lower if math.isfinite(lim.lower) else current[j] - 2 * math.pi
                hi = lim.upper if math.isfinite(lim.upper) else current[j] + 2 * math.pi
                lower.append(lo)
                upper.append(hi)
                ranges.append(max(hi - lo, 1e-6))
                damping.append(0.01)
            else:  # not ours to move: pinned by its limits, and heavily damped
                lower.append(current[j] - 1e-6)
                upper.append(current[j] + 1e-6)
                ranges.append(1e-6)
                damping.append(100.0)
            rest.append(current[j])
        lower_solved = [lower[dofs.index(j)] for j in joints]
        upper_solved = [upper[dofs.index(j)] for j in joints]

        def reset(q: np.ndarray) -> None:
            world.reset_joints(dict(zip(joints, q)))

        def errors() -> tuple[float, float]:
            p, q = world.link_pose(tip_link)
            p_err = float(np.linalg.norm(p - target_p))
            q_err = 0.0 if target_q is None else _angle_between(q, target_q)
            return p_err, q_err

        def converged(p_err: float, q_err: float) -> bool:
            return p_err <= tolerance and q_err <= orientation_tolerance

        def attempt(start: np.ndarray) -> tuple[np.ndarray, float, float, int]:
            """Iterate from ``start`` (also the first rest pose); the solution and its errors."""
            for j, value in zip(joints, start):
                rest[dofs.index(j)] = float(value)
            solution = np.array(start, dtype=float)
            reset(solution)
            p_err, q_err = errors()
            done = 0
            while not converged(p_err, q_err) and done < iterations:
                by_name = world.inverse_kinematics(
                    tip_link, target_p, target_q, lower, upper, ranges, rest, damping,
                    max_iterations=20, residual=tolerance * 0.1)
                solution = np.array([min(max(by_name[j], lim.lower), lim.upper)
                                     for j, lim in zip(joints, lims)])
                reset(solution)
                p_err, q_err = errors()
                done += 1
                # The rest pose pulls the null space back to the seed, which can leave the tip a
                # mm short of the target; from the next round on it holds the current solution.
                for j, value in zip(joints, solution):
                    rest[dofs.index(j)] = float(value)
            return solution, p_err, q_err, done

        world.reset_joints(current)
        first = np.array([current[j] for j in joints])
        solution, p_err, q_err, done = attempt(first)
        best = (p_err + q_err, p_err, q_err)
        rng = np.random.default_rng(0)  # restarts are deterministic: same question, same answer
        for _ in range(restarts):
            if converged(p_err, q_err):
                break
            low = np.array([max(lo, q - math.pi) for lo, q in zip(lower_solved, first)])
            high = np.array([min(hi, q + math.pi) for hi, q in zip(upper_solved, first)])
            candidate, cp, cq, more = attempt(rng.uniform(low, high))
            done += more
            if converged(cp, cq) or cp + cq < best[0]:
                solution, p_err, q_err = candidate, cp, cq
                best = (cp + cq, cp, cq)
        if not converged(p_err, q_err):
            what = f'tip error {p_err:.4f} m'
            if target_q is not None:
                what += f', {q_err:.4f} rad'
            raise ValueError(f'unreachable: {what} after {done} iterations (link {tip_link}, '
                             f'target {np.round(target_p, 4).tolist()} m in the world frame)')
        revolute = [movable[j].type in ('revolute', 'continuous') for j in joints]
        return np.array([_nearest_equivalent(float(q), float(s), lim, r)
                         for q, s, lim, r in zip(solution, seed, lims, revolute)])


def forward_kinematics(world: PhysicsWorld, tip_link: str, joints: Sequence[str],
                       positions: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """World pose (position (3,), quaternion xyzw) of a link at the given joint positions.

    Like :func:`solve_ik`, on a private world whose state is restored afterwards.
    """
    if tip_link not in world.link_index:
        raise ValueError(f'link {tip_link!r} is not a link of robot {world.model.name!r}; its '
                         f'links are {sorted(world.link_index)}')
    return world.forward_kinematics(tip_link, dict(zip(joints, positions)))
