"""Edge-case scenarios: what could be different from the model, as YAML, drawn with a seed.

A scenario file lists the edge cases a motion should survive — a payload, joint friction and
damping, a locked or a weak joint, sensor noise and dropouts, command latency and loss, an
obstacle that appears, an emergency stop — each parameter a fixed value or something to draw
from. :meth:`Scenario.draw` turns it into one concrete :class:`ScenarioDraw` from a seed alone, so
rollout ``i`` of a sweep with seed ``s`` draws the same values whichever process runs it
(:func:`rollout_seed`). A draw then applies in two places:

* to the stand-in robot, the "world": :meth:`ScenarioDraw.perturbation` maps it onto the
  stand-in's :class:`~reverse_digital_twin.core.perturbation.Perturbation` (payload, damping,
  friction, latency, sensor noise); :meth:`ScenarioDraw.apply_to` changes a
  :class:`~reverse_digital_twin.core.physics.PhysicsWorld` (the same dynamics plus a weak or a
  locked joint) and :class:`ScenarioRun` plays the events over time (dropouts, lost commands,
  the obstacle, the emergency stop);
* to a prediction, the "what if": a draw is a
  :class:`~reverse_digital_twin.core.prediction.WhatIf`, so
  ``predictor.predict(goal, start, what_if=draw)`` rolls the goal out under it and undoes it.

The file format (every key optional; see config/scenarios/ for examples)::

    description: a line for reports
    payload:        {probability: 1, mass: <kg>, link: <link name, '' = the arm's tip>}
    joints:         {<joint or '*'>: {friction: <N*m>, damping: <N*m*s/rad>}}
    locked_joint:   {probability: 1, joint: <joint name or 'any'>}
    weak_joint:     {probability: 1, joint: <name or 'any'>, effort_scale: <0..1 of URDF>}
    sensors:        {position_noise: <rad>, velocity_noise: <rad/s>, dropout: <0..1>}
    commands:       {latency: <s>, loss: <0..1>}
    obstacle:       {probability: 1, time: <s> | time_fraction: <0..1>, shape: box | sphere,
                     size: [<x>, <y>, <z> m] (box) | diameter: <m> (sphere),
                     position: [<x>, <y>, <z> m, world frame] | on_path: <0..1>,
                     offset: [<x>, <y>, <z> m]}
    emergency_stop: {probability: 1, time: <s> | time_fraction: <0..1>}

Each value is a number (or name), ``{min: a, max: b}`` drawn uniformly, or ``{choices: [...]}``
drawn uniformly; ``probability`` is the share of draws that have the section's edge case.
``'*'`` in ``joints`` draws each controller joint on its own; ``'any'`` picks one controller
joint. ``time_fraction`` and ``on_path`` are fractions of the trajectory's duration (the
obstacle sits where the tip passes then, plus ``offset``), so one file fits any robot; joint and
link names are checked against the robot when a sweep starts (:meth:`Scenario.check_robot`).
Every error names the file, the key and what is allowed. No ROS; PyBullet only through
PhysicsWorld.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from reverse_digital_twin.core.controller import Command
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.goal import TrajectoryGoal
from reverse_digital_twin.core.paths import share_dir
from reverse_digital_twin.core.perturbation import Perturbation
from reverse_digital_twin.core.robot_model import RobotModel
from reverse_digital_twin.core.scene import _check_keys

if TYPE_CHECKING:  # physics imports pybullet; the file format needs none of it
    from reverse_digital_twin.core.physics import PhysicsWorld
    from reverse_digital_twin.core.prediction import Predictor

#: Where shipped scenario files live (under the package share), found by name.
SCENARIO_DIR = 'config/scenarios'
#: The obstacle's name in contacts and verdicts.
OBSTACLE_NAME = 'scenario_obstacle'
#: s a rollout goes on after an emergency stop: the brakes hold, contacts while stopping count.
ESTOP_SETTLE = 0.25
#: Joint value meaning "one of the controller's joints, drawn".
ANY_JOINT = 'any'

_SECTIONS = ('payload', 'joints', 'locked_joint', 'weak_joint', 'sensors', 'commands',
             'obstacle', 'emergency_stop')
_TOP_KEYS = {'description', *_SECTIONS}
_KEYS = {
    'payload': {'probability', 'mass', 'link'},
    'joint': {'friction', 'damping'},
    'locked_joint': {'probability', 'joint'},
    'weak_joint': {'probability', 'joint', 'effort_scale'},
    'sensors': {'position_noise', 'velocity_noise', 'dropout'},
    'commands': {'latency', 'loss'},
    'obstacle': {'probability', 'time', 'time_fraction', 'shape', 'size', 'diameter',
                 'position', 'on_path', 'offset'},
    'emergency_stop': {'probability', 'time', 'time_fraction'},
}
#: Random streams: one per section (adding a section leaves the others' draws alone), and one
#: for what happens during a rollout (noise, dropouts, lost commands).
_STREAM = {name: k for k, name in enumerate((*_SECTIONS, 'run'))}
_SHAPES = ('box', 'sphere')


# --- values: fixed, a range or choices ----------------------------------------------------------

@dataclass(frozen=True)
class Bounds:
    """Which numbers a parameter allows, for checks and messages."""

    low: float = -math.inf
    high: float = math.inf
    unit: str = ''
    high_open: bool = False  # high itself is not allowed

    def allows(self, value: float) -> bool:
        return math.isfinite(value) and self.low <= value and (
            value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        unit = f' ({self.unit})' if self.unit else ''
        if math.isinf(self.high):
            return f'a number >= {self.low:g}{unit}' if math.isfinite(self.low) \
                else f'a number{unit}'
        close = ')' if self.high_open else ']'
        return f'a number in [{self.low:g}, {self.high:g}{close}{unit}'


@dataclass(frozen=True)
class Spec:
    """One parameter: a fixed ``value``, a range [``low``, ``high``] or ``choices``, the last
    two drawn uniformly."""

    value: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def varies(self) -> bool:
        return bool(self.choices) or (self.low is not None and self.low != self.high)

    def sample(self, rng: np.random.Generator) -> Any:
        if self.choices:
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.low is not None:
            return float(rng.uniform(self.low, self.high))
        return self.value


def _how(what: str) -> str:
    return (f'{what}, {{min: <a>, max: <b>}} to draw from uniformly, or {{choices: [...]}} to '
            'draw one of')


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _number(data: Mapping, key: str, where: str, bounds: Bounds, default: float | None) -> Spec:
    """A numeric parameter ``data[key]``; ``default`` when absent (None: required)."""
    name = f'{where}.{key}'
    if key not in data:
        if default is None:
            raise ConfigError(f'{name}: missing; expected {_how(bounds.describe())}')
        return Spec(value=float(default))
    value = data[key]

    def check(v: Any, label: str) -> float:
        if not _is_number(v) or not bounds.allows(float(v)):
            raise ConfigError(f'{label}: expected {bounds.describe()}, got {v!r}')
        return float(v)

    if _is_number(value):
        return Spec(value=check(value, name))
    if isinstance(value, dict) and set(value) == {'min', 'max'}:
        low, high = check(value['min'], f'{name}.min'), check(value['max'], f'{name}.max')
        if low > high:
            raise ConfigError(f'{name}: min ({low:g}) is greater than max ({high:g})')
        return Spec(low=low, high=high)
    if isinstance(value, dict) and set(value) == {'choices'}:
        choices = value['choices']
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f'{name}.choices: expected a non-empty list of '
                              f'{bounds.describe()}, got {choices!r}')
        return Spec(choices=tuple(check(v, f'{name}.choices[{i}]')
                                  for i, v in enumerate(choices)))
    raise ConfigError(f'{name}: expected {_how(bounds.describe())}; got {value!r}')


def _name(data: Mapping, key: str, where: str, what: str, default: str | None,
          allowed: Sequence[str] | None = None) -> Spec:
    """A name parameter (a joint, a link, a shape): a string or {choices: [strings]}."""
    name = f'{where}.{key}'
    allowed_text = f'; allowed: {list(allowed)}' if allowed is not None else ''
    if key not in data:
        if default is None:
            raise ConfigError(f'{name}: missing; expected {what} or {{choices: [...]}}'
                              f'{allowed_text}')
        return Spec(value=default)
    value = data[key]

    def check(v: Any, label: str) -> str:
        if not isinstance(v, str) or (allowed is not None and v not in allowed):
            raise ConfigError(f'{label}: expected {what}{allowed_text}, got {v!r}')
        return v

    if isinstance(value, dict) and set(value) == {'choices'} \
            and isinstance(value['choices'], list) and value['choices']:
        return Spec(choices=tuple(check(v, f'{name}.choices[{i}]')
                                  for i, v in enumerate(value['choices'])))
    if isinstance(value, dict):
        raise ConfigError(f'{name}: expected {what} or {{choices: [...]}} (a non-empty list)'
                          f'{allowed_text}, got {value!r}')
    return Spec(value=check(value, name))


def _vector(data: Mapping, key: str, where: str, bounds: Bounds,
            default: tuple[float, float, float] | None) -> tuple[Spec, Spec, Spec]:
    """Three numeric parameters, e.g. a position: [x, y, z], each a value, range or choices."""
    name = f'{where}.{key}'
    if key not in data:
        if default is None:
            raise ConfigError(f'{name}: missing; expected a list of 3 entries, each '
                              f'{_how(bounds.describe())}')
        return tuple(Spec(value=float(v)) for v in default)  # type: ignore[return-value]
    value = data[key]
    if not isinstance(value, list) or len(value) != 3:
        raise ConfigError(f'{name}: expected a list of 3 entries [x, y, z], each '
                          f'{_how(bounds.describe())}; got {value!r}')
    return tuple(_number({str(i): v}, str(i), name, bounds, None)  # type: ignore[return-value]
                 for i, v in enumerate(value))


def _probability(data: Mapping, where: str) -> float:
    value = data.get('probability', 1.0)
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f'{where}.probability: expected a number in [0, 1] (the share of '
                          f'draws with this edge case), got {value!r}')
    return float(value)


def _when(data: Mapping, where: str, default: float | None) -> tuple[Spec, bool]:
    """(time spec, as a fraction of the trajectory's duration) from ``time`` or
    ``time_fraction``."""
    if 'time' in data and 'time_fraction' in data:
        raise ConfigError(f'{where}: give time (s after the start) or time_fraction (of the '
                          "trajectory's duration), not both")
    if 'time_fraction' in data:
        return _number(data, 'time_fraction', where, Bounds(0.0, 1.0), None), True
    if 'time' not in data and default is None:
        raise ConfigError(f"{where}: missing time (s after the start) or time_fraction (of the "
                          "trajectory's duration)")
    return _number(data, 'time', where, Bounds(0.0, unit='s'), default), False


# --- the file -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Payload:
    probability: float
    mass: Spec
    link: Spec


@dataclass(frozen=True)
class _JointCase:
    probability: float
    joint: Spec
    effort_scale: Spec | None = None


@dataclass(frozen=True)
class _Obstacle:
    probability: float
    time: Spec
    time_is_fraction: bool
    shape: Spec
    size: tuple[Spec, Spec, Spec]
    diameter: Spec
    position: tuple[Spec, Spec, Spec] | None
    on_path: Spec | None
    offset: tuple[Spec, Spec, Spec]


@dataclass(frozen=True)
class _Stop:
    probability: float
    time: Spec
    time_is_fraction: bool


@dataclass(frozen=True)
class Scenario:
    """A validated scenario file (see the module docstring for the format)."""

    name: str
    source: str = ''  # the file, for messages
    description: str = ''
    payload: _Payload | None = None
    joints: tuple[tuple[str, Spec, Spec], ...] = ()  # (joint or '*', friction, damping)
    locked_joint: _JointCase | None = None
    weak_joint: _JointCase | None = None
    sensors: tuple[Spec, Spec, Spec] | None = None  # position noise, velocity noise, dropout
    commands: tuple[Spec, Spec] | None = None  # latency, loss
    obstacle: _Obstacle | None = None
    emergency_stop: _Stop | None = None

    def named_joints(self) -> list[tuple[str, str]]:
        """(key, joint name) of every joint the file names, for the robot check."""
        out = [(f'joints.{j}', j) for j, _, _ in self.joints if j != '*']
        for section in ('locked_joint', 'weak_joint'):
            case = getattr(self, section)
            if case is not None:
                names = case.joint.choices or (case.joint.value,)
                out += [(f'{section}.joint', j) for j in names if j != ANY_JOINT]
        return out

    def check_robot(self, model: RobotModel, joints: Sequence[str],
                    command_interfaces: Sequence[str] = ()) -> None:
        """Refuse joint and link names the robot does not have, and edge cases its controller
        cannot have.

        Args:
            model: the robot.
            joints: the controller's joints (what 'any' and '*' draw from).
            command_interfaces: the controller's; a locked joint and an emergency stop brake
                joints that position or velocity commands drive (PhysicsWorld.lock_joint),
                not joints driven by effort commands.

        Raises:
            ConfigError: naming the file, the key and the allowed names.
        """
        where = self.source or self.name
        joints = list(joints)
        if 'effort' in command_interfaces:
            for key in ('locked_joint', 'emergency_stop'):
                if getattr(self, key) is not None:
                    raise ConfigError(f'{where}: {key}: not modelled for a controller that '
                                      'commands efforts (it drives the joints itself; the '
                                      'brakes hold joints under position or velocity commands)')
        for key, joint in self.named_joints():
            if joint not in joints:
                extra = " or 'any'" if key.endswith('.joint') else " or '*'"
                raise ConfigError(f'{where}: {key}: {joint!r} is not a joint of the controller '
                                  f'of robot {model.name!r}; allowed: {joints}{extra}')
        if self.weak_joint is not None:
            names = self.weak_joint.joint.choices or (self.weak_joint.joint.value,)
            names = joints if ANY_JOINT in names else names
            for joint in names:
                if not math.isfinite(model.joint(joint).limits.effort):
                    raise ConfigError(f'{where}: weak_joint.joint: {joint!r} has no effort '
                                      'limit in the URDF to weaken; name a joint that has one')
        if self.payload is not None:
            links = [link for link in model.links if link != model.root_link]
            for link in self.payload.link.choices or (self.payload.link.value,):
                if link and link not in links:
                    raise ConfigError(f"{where}: payload.link: {link!r} is not a link of robot "
                                      f"{model.name!r} that can carry a payload; allowed: '' "
                                      f"(the arm's tip) or one of {links}")

    def draw(self, seed: int, joints: Sequence[str], duration: float) -> 'ScenarioDraw':
        """The concrete edge cases of one rollout, from ``seed`` alone.

        Args:
            seed: the rollout's seed (:func:`rollout_seed` in a sweep).
            joints: the controller's joints ('any' and '*' draw from them, in this order).
            duration: s, the trajectory's duration (for time_fraction).
        """
        seed = int(seed)

        def rng(section: str) -> np.random.Generator:
            return np.random.default_rng([seed, _STREAM[section]])

        values: dict[str, Any] = {'seed': seed}
        if self.payload is not None:
            r = rng('payload')
            if r.random() < self.payload.probability:
                values['payload_mass'] = float(self.payload.mass.sample(r))
                values['payload_link'] = str(self.payload.link.sample(r))
            else:
                values['payload_mass'] = 0.0
        if self.joints:
            r = rng('joints')
            rules = dict((j, (f, d)) for j, f, d in self.joints)
            friction, damping = [], []
            for joint in joints:
                rule = rules.get(joint, rules.get('*'))
                if rule is not None:
                    friction.append((joint, float(rule[0].sample(r))))
                    damping.append((joint, float(rule[1].sample(r))))
            values['joint_friction'] = tuple((j, v) for j, v in friction if v)
            values['joint_damping'] = tuple((j, v) for j, v in damping if v)
        for section in ('locked_joint', 'weak_joint'):
            case = getattr(self, section)
            if case is None:
                continue
            r = rng(section)
            if r.random() < case.probability:
                joint = case.joint.sample(r)
                values[section] = joints[int(r.integers(len(joints)))] if joint == ANY_JOINT \
                    else joint
                if case.effort_scale is not None:
                    values['weak_effort_scale'] = float(case.effort_scale.sample(r))
        if self.sensors is not None:
            r = rng('sensors')
            for name, spec in zip(('position_noise', 'velocity_noise', 'sensor_dropout'),
                                  self.sensors):
                values[name] = float(spec.sample(r))
        if self.commands is not None:
            r = rng('commands')
            values['command_latency'] = float(self.commands[0].sample(r))
            values['command_loss'] = float(self.commands[1].sample(r))
        if self.obstacle is not None:
            values['obstacle'] = self._draw_obstacle(rng('obstacle'), duration)
        if self.emergency_stop is not None:
            r = rng('emergency_stop')
            stop = self.emergency_stop
            if r.random() < stop.probability:
                t = float(stop.time.sample(r))
                values['emergency_stop'] = t * duration if stop.time_is_fraction else t
        return ScenarioDraw(**values)

    def _draw_obstacle(self, r: np.random.Generator, duration: float) -> 'ObstacleDraw | None':
        o = self.obstacle
        assert o is not None
        if not r.random() < o.probability:
            return None
        t = float(o.time.sample(r))
        shape = str(o.shape.sample(r))
        size = tuple(float(s.sample(r)) for s in o.size) if shape == 'box' \
            else (float(o.diameter.sample(r)),)
        position = None if o.position is None else tuple(float(s.sample(r)) for s in o.position)
        on_path = None if o.on_path is None else float(o.on_path.sample(r))
        offset = tuple(float(s.sample(r)) for s in o.offset)
        return ObstacleDraw(t * duration if o.time_is_fraction else t, shape, size, position,
                            on_path, offset)


def rollout_seed(sweep_seed: int, index: int) -> int:
    """The seed of rollout ``index`` of a sweep: a function of the two alone (not of the
    worker that runs it), an integer < 2**32 that reproduces the rollout by itself."""
    state = np.random.SeedSequence([int(sweep_seed), int(index)]).generate_state(1)
    return int(state[0])


def scenario_path(name: str) -> Path:
    """A scenario file: a path to a YAML file, or the name of one under config/scenarios/."""
    path = Path(name)
    if path.suffix in ('.yaml', '.yml') or path.is_file():
        if not path.is_file():
            raise ConfigError(f'scenario file not found: {path}')
        return path
    shipped = share_dir() / SCENARIO_DIR / f'{name}.yaml'
    if not shipped.is_file():
        raise ConfigError(f'unknown scenario {name!r}: no file {path} and no {shipped}; '
                          f'shipped scenarios: {shipped_scenarios()}')
    return shipped


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in (share_dir() / SCENARIO_DIR).glob('*.yaml'))


def load_scenario(name: str | Path) -> Scenario:
    """Read and validate a scenario file (a path or a shipped name); errors name the file,
    the key and what is allowed."""
    path = scenario_path(str(name))
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: not valid YAML ({exc})') from None
    if data is None:
        data = {}
    return parse_scenario(data, str(path), path.stem)


def parse_scenario(data: Any, source: str, name: str = 'scenario') -> Scenario:
    """Validate a scenario's parsed YAML (``source`` names it in messages)."""
    if not isinstance(data, dict):
        raise ConfigError(f'{source}: expected a mapping at the top level with keys '
                          f'{sorted(_TOP_KEYS)}')
    _check_keys(data, _TOP_KEYS, source)
    sections: dict[str, Any] = {}
    for section in _SECTIONS:
        if section in data and not isinstance(data[section], dict):
            keys = sorted(_KEYS.get(section, ())) if section != 'joints' \
                else "<joint or '*'>: {friction, damping}"
            raise ConfigError(f'{source}: {section}: expected a mapping with keys {keys}, got '
                              f'{data[section]!r}')
        sections[section] = data.get(section)
    description = data.get('description', '')
    if not isinstance(description, str):
        raise ConfigError(f'{source}: description: expected a line of text, got '
                          f'{description!r}')
    out: dict[str, Any] = {'name': name, 'source': source, 'description': description}

    def where(section: str) -> str:
        return f'{source}: {section}'

    if (d := sections['payload']) is not None:
        _check_keys(d, _KEYS['payload'], where('payload'))
        w = where('payload')
        out['payload'] = _Payload(_probability(d, w),
                                  _number(d, 'mass', w, Bounds(0.0, unit='kg'), None),
                                  _name(d, 'link', w, "a link name ('' = the arm's tip)", ''))
    if (d := sections['joints']) is not None:
        rules = []
        for joint, rule in d.items():
            w = f'{source}: joints.{joint}'
            if not isinstance(rule, dict):
                raise ConfigError(f'{w}: expected a mapping with keys {sorted(_KEYS["joint"])}, '
                                  f'got {rule!r}')
            _check_keys(rule, _KEYS['joint'], w)
            rules.append((str(joint),
                          _number(rule, 'friction', w, Bounds(0.0, unit='N*m'), 0.0),
                          _number(rule, 'damping', w, Bounds(0.0, unit='N*m*s/rad'), 0.0)))
        out['joints'] = tuple(rules)
    joint_text = f"a joint name or '{ANY_JOINT}' (one of the controller's joints, drawn)"
    if (d := sections['locked_joint']) is not None:
        w = where('locked_joint')
        _check_keys(d, _KEYS['locked_joint'], w)
        out['locked_joint'] = _JointCase(_probability(d, w), _name(d, 'joint', w, joint_text,
                                                                   None))
    if (d := sections['weak_joint']) is not None:
        w = where('weak_joint')
        _check_keys(d, _KEYS['weak_joint'], w)
        out['weak_joint'] = _JointCase(
            _probability(d, w), _name(d, 'joint', w, joint_text, None),
            _number(d, 'effort_scale', w, Bounds(0.0, 1.0, 'share of the URDF effort limit'),
                    None))
    if (d := sections['sensors']) is not None:
        w = where('sensors')
        _check_keys(d, _KEYS['sensors'], w)
        out['sensors'] = (_number(d, 'position_noise', w, Bounds(0.0, unit='rad'), 0.0),
                          _number(d, 'velocity_noise', w, Bounds(0.0, unit='rad/s'), 0.0),
                          _number(d, 'dropout', w, Bounds(0.0, 1.0, 'share of measurements '
                                                          'lost', high_open=True), 0.0))
    if (d := sections['commands']) is not None:
        w = where('commands')
        _check_keys(d, _KEYS['commands'], w)
        out['commands'] = (_number(d, 'latency', w, Bounds(0.0, unit='s'), 0.0),
                           _number(d, 'loss', w, Bounds(0.0, 1.0, 'share of commands lost',
                                                        high_open=True), 0.0))
    if (d := sections['obstacle']) is not None:
        out['obstacle'] = _parse_obstacle(d, where('obstacle'))
    if (d := sections['emergency_stop']) is not None:
        w = where('emergency_stop')
        _check_keys(d, _KEYS['emergency_stop'], w)
        time, fraction = _when(d, w, None)
        out['emergency_stop'] = _Stop(_probability(d, w), time, fraction)
    return Scenario(**out)


def _parse_obstacle(d: dict, w: str) -> _Obstacle:
    _check_keys(d, _KEYS['obstacle'], w)
    if ('position' in d) == ('on_path' in d):
        raise ConfigError(f'{w}: give position ([x, y, z] m in the world frame) or on_path (the '
                          "fraction of the trajectory where the arm's tip passes), exactly one")
    if 'offset' in d and 'on_path' not in d:
        raise ConfigError(f'{w}.offset: only with on_path (it shifts the obstacle from the path)')
    time, fraction = _when(d, w, 0.0)
    shape = _name(d, 'shape', w, 'a shape', 'box', _SHAPES)
    shapes = shape.choices or (shape.value,)
    if 'size' in d and 'box' not in shapes:
        raise ConfigError(f'{w}.size: only for a box; a sphere takes diameter')
    if 'diameter' in d and 'sphere' not in shapes:
        raise ConfigError(f'{w}.diameter: only for a sphere; a box takes size')
    size = Bounds(1e-4, 10.0, 'm')
    return _Obstacle(
        _probability(d, w), time, fraction, shape,
        _vector(d, 'size', w, size, (0.1, 0.1, 0.1)),
        _number(d, 'diameter', w, size, 0.1),
        _vector(d, 'position', w, Bounds(unit='m'), None) if 'position' in d else None,
        _number(d, 'on_path', w, Bounds(0.0, 1.0), None) if 'on_path' in d else None,
        _vector(d, 'offset', w, Bounds(-10.0, 10.0, 'm'), (0.0, 0.0, 0.0)))


# --- one draw -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ObstacleDraw:
    """An obstacle that appears ``time`` s after the start: a box (``size`` its edges, m) or a
    sphere (``size`` (diameter,)), at ``position`` (world, m) or where the arm's tip is at
    ``on_path`` of the trajectory, plus ``offset``."""

    time: float
    shape: str
    size: tuple[float, ...]
    position: tuple[float, ...] | None
    on_path: float | None
    offset: tuple[float, ...] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class ScenarioDraw:
    """The concrete edge cases of one rollout; None or empty: not part of the scenario (the
    model's own value stays). Also a :class:`~reverse_digital_twin.core.prediction.WhatIf`."""

    seed: int
    payload_mass: float | None = None  # kg
    payload_link: str = ''  # '' = the arm's tip link
    joint_friction: tuple[tuple[str, float], ...] = ()  # (joint, N*m)
    joint_damping: tuple[tuple[str, float], ...] = ()  # (joint, extra N*m*s/rad)
    locked_joint: str = ''
    weak_joint: str = ''
    weak_effort_scale: float = 1.0  # share of the URDF effort limit
    position_noise: float | None = None  # rad
    velocity_noise: float | None = None  # rad/s
    sensor_dropout: float = 0.0  # probability that a measurement is lost (the last one stays)
    command_latency: float | None = None  # s
    command_loss: float = 0.0  # probability that a command is lost (the last one stays)
    obstacle: ObstacleDraw | None = None
    emergency_stop: float | None = None  # s after the start

    def to_dict(self) -> dict[str, Any]:
        """What this draw sets, JSON-ready (floats rounded to 6 decimals)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == f.default or value == () or (
                    f.name == 'payload_link' and not self.payload_mass):
                continue
            if f.name in ('joint_friction', 'joint_damping'):
                value = {j: round(v, 6) for j, v in value}
            elif isinstance(value, ObstacleDraw):
                value = {k: _rounded(v) for k, v in vars(value).items() if v is not None}
            out[f.name] = _rounded(value)
        out['seed'] = self.seed
        return out

    def describe(self) -> str:
        """One line for people, e.g. 'payload 3.20 kg, elbow_joint locked'."""
        parts = []
        if self.payload_mass:
            parts.append(f'payload {self.payload_mass:.2f} kg'
                         + (f' at {self.payload_link}' if self.payload_link else ''))
        parts += _per_joint('friction', self.joint_friction, 'N*m')
        parts += _per_joint('extra damping', self.joint_damping, 'N*m*s/rad')
        if self.locked_joint:
            parts.append(f'{self.locked_joint} locked')
        if self.weak_joint:
            parts.append(f'{self.weak_joint} at {self.weak_effort_scale:.0%} of its effort')
        if self.position_noise or self.velocity_noise:
            parts.append(f'sensor noise {self.position_noise or 0:.2g} rad, '
                         f'{self.velocity_noise or 0:.2g} rad/s')
        if self.sensor_dropout:
            parts.append(f'{self.sensor_dropout:.0%} of measurements lost')
        if self.command_latency:
            parts.append(f'latency {self.command_latency * 1000:.1f} ms')
        if self.command_loss:
            parts.append(f'{self.command_loss:.0%} of commands lost')
        if self.obstacle is not None:
            o = self.obstacle
            where = f'on the path at {o.on_path:.0%}' if o.on_path is not None \
                else f'at ({", ".join(f"{v:.2f}" for v in o.position or ())}) m'
            parts.append(f'a {o.shape} appears {where} at {o.time:.2f} s')
        if self.emergency_stop is not None:
            parts.append(f'emergency stop at {self.emergency_stop:.2f} s')
        return ', '.join(parts) or 'nothing changed'

    # --- the stand-in ("the world") ---------------------------------------------------------
    def perturbation(self, base: Perturbation | None = None) -> Perturbation:
        """The stand-in's perturbation with this draw's payload, friction, damping, latency and
        sensor noise (``base``'s values where the scenario sets none; its seed, else the
        draw's). A weak or locked joint has no perturbation parameter: :meth:`apply_to` the
        stand-in's world; dropouts, lost commands, obstacles, stops: :class:`ScenarioRun`."""
        base = base or Perturbation(seed=self.seed)
        friction = {**base.joint_friction, **dict(self.joint_friction)}
        damping = {**base.joint_damping, **dict(self.joint_damping)}
        out = Perturbation(
            payload_mass=base.payload_mass if self.payload_mass is None else self.payload_mass,
            payload_link=base.payload_link if self.payload_mass is None else self.payload_link,
            joint_damping=damping, joint_friction=friction,
            command_latency=_or(self.command_latency, base.command_latency),
            position_noise=_or(self.position_noise, base.position_noise),
            velocity_noise=_or(self.velocity_noise, base.velocity_noise),
            joint_offsets=dict(base.joint_offsets), seed=base.seed)
        out.validate()
        return out

    def apply_to(self, world: 'PhysicsWorld') -> Callable[[], None]:
        """Give a world (the stand-in's, a prediction's) this draw's dynamics: payload, extra
        damping, friction, a weak joint, a joint locked where it is. Sets, never accumulates,
        like :meth:`Perturbation.apply_to`; returns the function that puts every changed value
        back exactly as it was.

        Raises:
            ConfigError: unknown joints or links (nothing is left changed).
        """
        from reverse_digital_twin.core.stand_in_dynamics import StandInDynamics  # noqa: PLC0415
        undo: list[Callable[[], None]] = []

        def restore() -> None:
            for step in reversed(undo):
                step()
            undo.clear()

        try:
            existing = [s for s in world.dynamics_sources if isinstance(s, StandInDynamics)]
            dynamics = existing[0] if existing else None
            if self.payload_mass is not None:
                link = self.payload_link or world.tip_link
                before = dynamics.payload(link) if dynamics is not None else 0.0
                if self.payload_mass or before:
                    dynamics = StandInDynamics.of(world)
                    try:
                        dynamics.set_payload(self.payload_mass, link)
                    except ConfigError as exc:
                        raise ConfigError(f'scenario payload.link: {exc}') from None
                    undo.append(lambda d=dynamics, m=before, k=link: d.set_payload(m, k))
            for joint, extra in self.joint_damping:
                before = world.joint_damping(joint)
                world.set_joint_damping(joint, world.joint_damping(joint, urdf=True) + extra)
                undo.append(lambda j=joint, b=before: world.set_joint_damping(j, b))
            if self.joint_friction:
                dynamics = StandInDynamics.of(world)
                for joint, friction in self.joint_friction:
                    before = dynamics.joint_friction(joint)
                    dynamics.set_joint_friction(joint, friction)
                    undo.append(lambda d=dynamics, j=joint, b=before: d.set_joint_friction(j, b))
            if self.weak_joint:
                effort = world.model.joint(self.weak_joint).limits.effort
                if not math.isfinite(effort):
                    raise ConfigError(f'scenario weak_joint: {self.weak_joint!r} has no effort '
                                      'limit in the URDF to weaken')
                world.set_joint_max_effort(self.weak_joint, self.weak_effort_scale * effort)
                undo.append(lambda: world.set_joint_max_effort(self.weak_joint, None))
            if self.locked_joint:
                world.lock_joint(self.locked_joint)
                undo.append(lambda: world.unlock_joint(self.locked_joint))
        except Exception:
            restore()
            raise
        return restore

    # --- a prediction ("what if") -----------------------------------------------------------
    def begin(self, predictor: 'Predictor', goal: TrajectoryGoal,
              start_positions: Mapping[str, float]) -> 'ScenarioRun':
        """The :class:`~reverse_digital_twin.core.prediction.WhatIf` hook: this draw over one
        prediction of ``goal`` (an obstacle on the path is placed along it)."""
        return ScenarioRun(self, predictor.world, list(predictor.config.joints),
                           path=(goal, dict(start_positions)))


def _per_joint(what: str, values: Sequence[tuple[str, float]], unit: str) -> list[str]:
    """'elbow_joint friction 0.40 N*m', or for more than two joints their range."""
    if len(values) <= 2:
        return [f'{j} {what} {v:.2f} {unit}' for j, v in values]
    numbers = [v for _, v in values]
    return [f'{what} {min(numbers):.2f}-{max(numbers):.2f} {unit} in {len(values)} joints']


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, tuple):
        return [_rounded(v) for v in value]
    return value


def _tip_on_path(world: 'PhysicsWorld', goal: TrajectoryGoal,
                 start_positions: Mapping[str, float], fraction: float) -> np.ndarray:
    """Where the arm's tip is (world frame) at the waypoint nearest ``fraction`` of the
    goal's duration (the start pose counts as a waypoint at 0 s)."""
    t = fraction * float(goal.points[-1].time_from_start)
    poses = [(0.0, dict(start_positions))] + [
        (float(p.time_from_start), {**start_positions, **dict(zip(
            goal.joint_names, (float(q) for q in p.positions)))}) for p in goal.points]
    _, positions = min(poses, key=lambda pose: abs(pose[0] - t))
    return world.forward_kinematics(world.tip_link, positions)[0]


@dataclass
class ScenarioRun:
    """A draw playing out over one run of a world (a prediction, or the stand-in's loop):
    the hooks of :class:`~reverse_digital_twin.core.prediction.WhatIfSession`.

    The first :meth:`before_step` applies the draw's dynamics (:meth:`ScenarioDraw.apply_to`,
    the locked joint held where the run starts) and places an obstacle on the path (``path``:
    the goal and its start; ``obstacle_position`` instead places it anywhere, e.g. for the
    stand-in's world, which knows no goal); the obstacle appears at its time, the
    emergency stop brakes every joint of ``joints`` where it is at its time, and the run ends
    :data:`ESTOP_SETTLE` s later. Noise, dropouts and lost commands draw from the draw's own
    stream, per call, so a run is reproducible from the draw alone. :meth:`end` undoes it all.
    """

    draw: ScenarioDraw
    world: 'PhysicsWorld'
    joints: list[str]
    obstacle_position: tuple[float, ...] | None = None
    path: tuple[TrajectoryGoal, Mapping[str, float]] | None = None
    reasons: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        d = self.draw
        self.extra_command_latency = float(d.command_latency or 0.0)
        self._rng = np.random.default_rng([d.seed, _STREAM['run']])
        self._undo: Callable[[], None] | None = None
        self._obstacle = False
        self._stopped_at: float | None = None
        self._noise = (float(d.position_noise or 0.0), float(d.velocity_noise or 0.0))
        self._last_seen: tuple[np.ndarray, np.ndarray] | None = None
        self._last_sent: Command | None = None
        o = d.obstacle
        if o is not None and self.obstacle_position is None:
            if o.position is not None:
                self.obstacle_position = o.position
            elif self.path is None:
                raise ConfigError('an obstacle on the path needs the path (the goal and its '
                                  'start) or a position')

    def measure(self, t: float, positions: np.ndarray,
                velocities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = self.draw
        if d.sensor_dropout and self._last_seen is not None \
                and self._rng.random() < d.sensor_dropout:
            return self._last_seen
        sigma_q, sigma_v = self._noise
        if sigma_q:
            positions = positions + self._rng.normal(0.0, sigma_q, len(positions))
        if sigma_v:
            velocities = velocities + self._rng.normal(0.0, sigma_v, len(velocities))
        if d.sensor_dropout:
            self._last_seen = (positions, velocities)
        return positions, velocities

    def command(self, t: float, command: Command) -> Command:
        if self.draw.command_loss and self._last_sent is not None \
                and self._rng.random() < self.draw.command_loss:
            return self._last_sent
        self._last_sent = command
        return command

    def before_step(self, t: float, world: 'PhysicsWorld') -> None:
        o = self.draw.obstacle
        if self._undo is None:
            self._undo = self.draw.apply_to(world)
            if o is not None and self.obstacle_position is None:  # the fresh start: the same
                assert self.path is not None and o.on_path is not None  # pose every time
                tip = _tip_on_path(world, *self.path, o.on_path)
                self.obstacle_position = tuple(float(v) for v in np.add(tip, o.offset))
        if o is not None and not self._obstacle and t >= o.time - 1e-9:
            assert self.obstacle_position is not None
            world.add_obstacle(OBSTACLE_NAME, o.shape, o.size, self.obstacle_position)
            self._obstacle = True
        stop = self.draw.emergency_stop
        if stop is not None and self._stopped_at is None and t >= stop - 1e-9:
            for joint in self.joints:
                world.lock_joint(joint)
            self._stopped_at = t
            self.reasons.append(f'emergency stop at {t:.2f} s: every joint braked where it '
                                'was; the goal is not reached')

    def done(self, t: float) -> bool:
        return self._stopped_at is not None and t >= self._stopped_at + ESTOP_SETTLE - 1e-9

    def end(self) -> None:
        if self._obstacle:
            self.world.remove_obstacle(OBSTACLE_NAME)
            self._obstacle = False
        if self._stopped_at is not None:
            for joint in self.joints:
                self.world.unlock_joint(joint)
        if self._undo is not None:
            self._undo()
            self._undo = None
