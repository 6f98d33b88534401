"""Scenario files (core/scenario.py): validation that names the file, the key and what is
allowed; seeded draws; a draw applied to the stand-in (a Perturbation, a PhysicsWorld) and to a
prediction (the "what if"), and undone to the bit. Headless PyBullet, no ROS."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.motion import plan_joint_motion
from reverse_digital_twin.core.perturbation import Perturbation
from reverse_digital_twin.core.scenario import OBSTACLE_NAME, ScenarioDraw, load_scenario
from reverse_digital_twin.core.scenario import parse_scenario, rollout_seed, shipped_scenarios
from reverse_digital_twin.robot_setup import load_robot
from reverse_digital_twin.sweep_cli import predictor_spec

ROBOTS = ('rdt_arm6', 'panda')


def write(tmp_path: Path, text: str, name: str = 'case.yaml') -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- validation: the file, the key, what is allowed ---------------------------------------------
BAD = [
    # (file text, expected pieces of the message, in order)
    ('payload: {mass: 1.0}\nwind: 3\n',
     ['unknown key(s)', "'wind'", 'allowed:', "'emergency_stop'", "'payload'"]),
    ('payload: {mass: -1}\n', ['payload.mass', 'a number >= 0 (kg)', '-1']),
    ('payload: {mass: {min: 5, max: 1}}\n', ['payload.mass', 'min (5) is greater than max (1)']),
    ('payload: {mass: {min: 0, max: nope}}\n', ['payload.mass.max', 'a number >= 0 (kg)']),
    ('payload: {mass: {min: 0}}\n', ['payload.mass', '{min: <a>, max: <b>}', '{choices: [...]}']),
    ('payload: {mass: {choices: []}}\n', ['payload.mass.choices', 'non-empty list']),
    ('payload: {mass: 1, probability: 1.5}\n', ['payload.probability', 'in [0, 1]', '1.5']),
    ('payload: {mass: 1, where: tip}\n', ['payload', "unknown key(s) ['where']",
                                          "allowed: ['link', 'mass', 'probability']"]),
    ('payload: 3\n', ['payload: expected a mapping with keys', "'mass'", '3']),
    ('joints: {elbow_joint: {friction: -0.1}}\n', ['joints.elbow_joint.friction', '>= 0 (N*m)']),
    ('joints: {"*": {stiction: 1}}\n', ['joints.*', "['stiction']", "['damping', 'friction']"]),
    ('locked_joint: {probability: 0.5}\n', ['locked_joint.joint: missing', "'any'"]),
    ('locked_joint: {joint: 3}\n', ['locked_joint.joint', 'a joint name', "'any'", '3']),
    ('weak_joint: {joint: any}\n', ['weak_joint.effort_scale: missing', 'in [0, 1]']),
    ('weak_joint: {joint: any, effort_scale: 2}\n', ['weak_joint.effort_scale', 'in [0, 1]']),
    ('sensors: {dropout: 1.0}\n', ['sensors.dropout', 'in [0, 1)']),
    ('commands: {latency: {min: 0, max: .inf}}\n', ['commands.latency.max', '>= 0 (s)']),
    ('obstacle: {on_path: 0.5, shape: cone}\n',
     ['obstacle.shape', "allowed: ['box', 'sphere']", "'cone'"]),
    ('obstacle: {position: [0, 0, 1], on_path: 0.5}\n', ['obstacle', 'position', 'on_path',
                                                         'exactly one']),
    ('obstacle: {time: 1}\n', ['obstacle', 'give position', 'or on_path']),
    ('obstacle: {position: [0, 1]}\n', ['obstacle.position', 'a list of 3 entries']),
    ('obstacle: {on_path: 1.5}\n', ['obstacle.on_path', 'in [0, 1]']),
    ('obstacle: {on_path: 0.5, shape: sphere, size: [1, 1, 1]}\n',
     ['obstacle.size', 'only for a box', 'diameter']),
    ('obstacle: {position: [0, 0, 1], offset: [0, 0, 1]}\n', ['obstacle.offset', 'on_path']),
    ('emergency_stop: {probability: 0.5}\n', ['emergency_stop', 'missing time', 'time_fraction']),
    ('emergency_stop: {time: 1, time_fraction: 0.5}\n', ['emergency_stop', 'not both']),
    ('description: [a, b]\n', ['description', 'a line of text']),
    ('- payload\n', ['expected a mapping at the top level']),
    ('payload: {mass: [1, 2\n', ['not valid YAML']),
]


@pytest.mark.parametrize('text,pieces', BAD, ids=[f'bad{i}' for i in range(len(BAD))])
def test_errors_name_the_file_the_key_and_what_is_allowed(tmp_path, text, pieces):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    position = 0
    for piece in pieces:
        found = message.find(piece, position)
        assert found >= 0, f'{piece!r} not in order in: {message}'
        position = found


def test_missing_and_unknown_files():
    with pytest.raises(ConfigError, match='scenario file not found: /no/such.yaml'):
        load_scenario('/no/such.yaml')
    with pytest.raises(ConfigError) as info:
        load_scenario('no_such_scenario')
    assert 'shipped scenarios' in str(info.value) and 'locked_joint' in str(info.value)


def test_names_are_checked_against_the_robot(tmp_path):
    setup = load_robot('rdt_arm6')
    model = setup.model()
    joints = list(setup.joints)
    cases = [
        ('locked_joint: {joint: knee}\n', 'locked_joint.joint', "'knee' is not a joint"),
        ('weak_joint: {joint: {choices: [elbow_joint, hip]}, effort_scale: 0.5}\n',
         'weak_joint.joint', "'hip' is not a joint"),
        ('joints: {ankle: {friction: 1}}\n', 'joints.ankle', "'ankle' is not a joint"),
        ('payload: {mass: 1, link: hand}\n', 'payload.link', "'hand' is not a link"),
    ]
    for text, key, what in cases:
        scenario = load_scenario(write(tmp_path, text))
        with pytest.raises(ConfigError) as info:
            scenario.check_robot(model, joints)
        message = str(info.value)
        assert message.startswith(f'{tmp_path / "case.yaml"}: {key}: {what}'), message
        assert 'allowed:' in message
        if key != 'payload.link':
            assert str(joints) in message
        else:
            assert "'' (the arm's tip)" in message and 'wrist_3_link' in message


@pytest.mark.parametrize('robot', ROBOTS)
def test_shipped_scenarios_load_and_fit_every_robot(robot):
    names = shipped_scenarios()
    assert {'payload_range', 'locked_joint', 'weak_joint', 'edge_cases'} <= set(names)
    setup = load_robot(robot)
    model = setup.model()
    for name in names:
        scenario = load_scenario(name)
        assert scenario.description
        scenario.check_robot(model, setup.joints)
        for i in range(20):
            draw = scenario.draw(rollout_seed(7, i), setup.joints, 3.0)
            assert draw.locked_joint in ('', *setup.joints)
            assert draw.weak_joint in ('', *setup.joints)


# --- draws --------------------------------------------------------------------------------------
RICH = '''
payload: {probability: 0.5, mass: {min: 1.0, max: 2.0}}
joints:
  '*': {friction: {min: 0.0, max: 0.5}}
  elbow_joint: {friction: 3.0, damping: {choices: [0.1, 0.2]}}
locked_joint: {probability: 0.3, joint: any}
weak_joint: {probability: 0.3, joint: {choices: [elbow_joint, wrist_1_joint]},
             effort_scale: {min: 0.2, max: 0.4}}
sensors: {position_noise: 0.001, dropout: {min: 0.0, max: 0.1}}
commands: {latency: {min: 0.0, max: 0.02}, loss: 0.05}
obstacle: {probability: 0.5, time_fraction: {min: 0.5, max: 1.0}, shape: {choices: [box, sphere]},
           on_path: 0.5, offset: [0, 0, {min: -0.1, max: 0.1}]}
emergency_stop: {probability: 0.2, time: {min: 0.1, max: 0.2}}
'''
JOINTS = ['shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint', 'wrist_1_joint',
          'wrist_2_joint', 'wrist_3_joint']


def test_a_draw_depends_on_its_seed_alone():
    scenario = parse_scenario(yaml.safe_load(RICH), 'rich')
    seeds = [rollout_seed(11, i) for i in range(300)]
    assert seeds == [rollout_seed(11, i) for i in range(300)]  # (sweep seed, index) alone
    assert len(set(seeds)) == 300 and all(0 <= s < 2 ** 32 for s in seeds)
    assert rollout_seed(12, 0) != rollout_seed(11, 0)
    draws = [scenario.draw(s, JOINTS, 2.0) for s in seeds]
    assert draws == [scenario.draw(s, JOINTS, 2.0) for s in reversed(seeds)][::-1]
    assert len({d.to_dict().__repr__() for d in draws}) == 300
    # every value within what the file allows
    for d in draws:
        assert d.payload_mass == 0.0 or 1.0 <= d.payload_mass <= 2.0
        friction = dict(d.joint_friction)
        assert friction['elbow_joint'] == 3.0
        assert all(0.0 <= v <= 0.5 for j, v in friction.items() if j != 'elbow_joint')
        assert dict(d.joint_damping) == {'elbow_joint': dict(d.joint_damping)['elbow_joint']}
        assert dict(d.joint_damping)['elbow_joint'] in (0.1, 0.2)
        assert d.weak_joint in ('', 'elbow_joint', 'wrist_1_joint')
        assert not d.weak_joint or 0.2 <= d.weak_effort_scale <= 0.4
        assert d.position_noise == 0.001 and 0.0 <= d.sensor_dropout <= 0.1
        assert 0.0 <= d.command_latency <= 0.02 and d.command_loss == 0.05
        if d.obstacle is not None:
            assert 1.0 <= d.obstacle.time <= 2.0  # a fraction of the 2 s duration
            assert d.obstacle.shape in ('box', 'sphere') and d.obstacle.on_path == 0.5
            assert len(d.obstacle.size) == (3 if d.obstacle.shape == 'box' else 1)
            assert abs(d.obstacle.offset[2]) <= 0.1
        assert d.emergency_stop is None or 0.1 <= d.emergency_stop <= 0.2
    # probabilities are shares of the draws; 'any' covers the joints
    share = {name: sum(bool(getattr(d, name)) for d in draws) / len(draws)
             for name in ('locked_joint', 'weak_joint', 'obstacle')}
    assert abs(share['locked_joint'] - 0.3) < 0.1 and abs(share['obstacle'] - 0.5) < 0.1
    assert {d.locked_joint for d in draws} == {'', *JOINTS}
    assert abs(sum(bool(d.payload_mass) for d in draws) / 300 - 0.5) < 0.1


def test_sections_draw_from_their_own_streams():
    """Adding an edge case to a file changes no other section's draws."""
    small = parse_scenario({'payload': {'mass': {'min': 0, 'max': 9}}}, 'small')
    large = parse_scenario(yaml.safe_load(RICH + 'description: x\n')
                           | {'payload': {'mass': {'min': 0, 'max': 9}}}, 'large')
    for i in range(20):
        seed = rollout_seed(3, i)
        assert small.draw(seed, JOINTS, 1.0).payload_mass == \
            large.draw(seed, JOINTS, 1.0).payload_mass


def test_a_draw_configures_the_stand_in_perturbation():
    draw = ScenarioDraw(seed=5, payload_mass=2.5, joint_friction=(('elbow_joint', 0.7),),
                        joint_damping=(('wrist_1_joint', 0.3),), command_latency=0.012,
                        position_noise=0.001)
    base = Perturbation(payload_mass=0.5, joint_friction={'shoulder_pan_joint': 0.5},
                        velocity_noise=0.002, joint_offsets={'elbow_joint': 0.002}, seed=7)
    p = draw.perturbation(base)
    assert (p.payload_mass, p.payload_link, p.command_latency) == (2.5, '', 0.012)
    assert dict(p.joint_friction) == {'shoulder_pan_joint': 0.5, 'elbow_joint': 0.7}
    assert dict(p.joint_damping) == {'wrist_1_joint': 0.3}
    assert (p.position_noise, p.velocity_noise, p.seed) == (0.001, 0.002, 7)
    assert dict(p.joint_offsets) == {'elbow_joint': 0.002}
    # what the scenario does not set stays the stand-in's own
    assert ScenarioDraw(seed=1).perturbation(base) == base
    assert ScenarioDraw(seed=9).perturbation().seed == 9


def test_to_dict_and_describe_name_what_was_drawn():
    draw = ScenarioDraw(seed=3, payload_mass=1.25, locked_joint='elbow_joint',
                        emergency_stop=0.5)
    assert draw.to_dict() == {'payload_mass': 1.25, 'locked_joint': 'elbow_joint',
                              'emergency_stop': 0.5, 'seed': 3}
    text = draw.describe()
    assert 'payload 1.25 kg' in text and 'elbow_joint locked' in text \
        and 'emergency stop at 0.50 s' in text
    assert ScenarioDraw(seed=1).describe() == 'nothing changed'


# --- the "what if": a draw on a prediction, undone to the bit -----------------------------------
@pytest.fixture(scope='module')
def twin():
    """rdt_arm6's predictor as the planner builds it, a 1 s motion moving every joint by
    0.3 rad (beyond the 0.2 rad path tolerance) and its plain verdict."""
    setup = load_robot('rdt_arm6')
    spec = predictor_spec(setup)
    joints = list(spec.config.joints)
    home = np.array([setup.initial_positions[j] for j in joints])
    goal = plan_joint_motion(home, home + 0.3 * np.array([-1, 1, -1, 1, -1, 1]), joints,
                             spec.config.limits)
    start = dict(zip(joints, home.tolist()))
    with spec.build() as predictor:
        plain = predictor.predict(goal, start)
        assert plain.safe, plain.summary
        yield predictor, goal, start, plain


def _same(a, b) -> None:
    assert a.safe == b.safe and a.reasons == b.reasons
    assert np.array_equal(a.positions, b.positions) and np.array_equal(a.velocities,
                                                                       b.velocities)


def test_an_empty_draw_is_the_plain_prediction(twin):
    predictor, goal, start, plain = twin
    _same(predictor.predict(goal, start, what_if=ScenarioDraw(seed=1)), plain)


@pytest.mark.parametrize('draw,expect', [
    (ScenarioDraw(seed=1, locked_joint='elbow_joint'),
     r'abort: .*path tolerance.*elbow_joint'),
    (ScenarioDraw(seed=2, weak_joint='shoulder_lift_joint', weak_effort_scale=0.05),
     r'abort: .*path tolerance.*shoulder_lift_joint'),
    (ScenarioDraw(seed=3, payload_mass=60.0), r'effort limit: .* saturates|path tolerance'),
    (ScenarioDraw(seed=4, emergency_stop=0.3),
     r'^emergency stop at 0\.30 s: every joint braked'),
], ids=['locked', 'weak', 'payload', 'estop'])
def test_a_what_if_fails_the_goal_for_its_reason_and_is_undone(twin, draw, expect):
    predictor, goal, start, plain = twin
    verdict = predictor.predict(goal, start, what_if=draw)
    assert not verdict.safe
    assert any(re.search(expect, r) for r in verdict.reasons), verdict.summary
    assert predictor.predict(goal, start, what_if=draw).reasons == verdict.reasons  # repeatable
    _same(predictor.predict(goal, start), plain)  # and gone: the next prediction is plain


def test_an_emergency_stop_holds_the_arm_where_it_was(twin):
    predictor, goal, start, _ = twin
    verdict = predictor.predict(goal, start, what_if=ScenarioDraw(seed=4, emergency_stop=0.3))
    stop = int(np.searchsorted(verdict.times, 0.3 - 1e-9))
    held = verdict.positions[stop + 2:]
    assert len(held) >= 10 and np.abs(held - held[0]).max() < 1e-3
    assert verdict.duration == pytest.approx(0.3 + 0.25 + 0.01, abs=0.011)


def test_an_obstacle_appears_on_the_path(twin):
    predictor, goal, start, plain = twin
    draw = ScenarioDraw(seed=6, obstacle=parse_scenario(
        {'obstacle': {'time': 0.2, 'shape': 'sphere', 'diameter': 0.12, 'on_path': 0.8}},
        'o').draw(1, JOINTS, 1.0).obstacle)
    verdict = predictor.predict(goal, start, what_if=draw)
    assert verdict.collisions and verdict.collisions[0].other == OBSTACLE_NAME
    assert verdict.collisions[0].time >= 0.2 - 1e-9
    assert OBSTACLE_NAME not in predictor.world.object_ids
    _same(predictor.predict(goal, start), plain)


def test_noise_dropouts_and_latency_are_seeded(twin):
    predictor, goal, start, plain = twin
    draw = ScenarioDraw(seed=8, position_noise=0.002, velocity_noise=0.01, sensor_dropout=0.2,
                        command_latency=0.013, command_loss=0.1)
    a = predictor.predict(goal, start, what_if=draw)
    b = predictor.predict(goal, start, what_if=draw)
    _same(a, b)
    assert not np.array_equal(a.positions, plain.positions[:len(a.positions)])
    other = predictor.predict(goal, start, what_if=ScenarioDraw(
        seed=9, position_noise=0.002, velocity_noise=0.01, sensor_dropout=0.2,
        command_latency=0.013, command_loss=0.1))
    assert not np.array_equal(a.positions, other.positions)
    _same(predictor.predict(goal, start), plain)


def test_apply_to_a_world_sets_and_undoes_exactly(twin):
    """The stand-in's world takes a draw the same way; the undo restores every value."""
    predictor, _, _, _ = twin
    world = predictor.world
    joint = 'elbow_joint'
    damping = world.joint_damping(joint)
    tip = world.tip_link
    mass = world.link_inertia(tip)
    undo = ScenarioDraw(seed=1, payload_mass=3.0, joint_damping=((joint, 0.4),),
                        joint_friction=((joint, 1.5),), weak_joint='wrist_1_joint',
                        weak_effort_scale=0.5, locked_joint='wrist_2_joint').apply_to(world)
    assert world.link_inertia(tip)[0] == pytest.approx(mass[0] + 3.0)
    assert world.joint_damping(joint) == pytest.approx(world.joint_damping(joint, urdf=True)
                                                       + 0.4)
    undo()
    assert world.link_inertia(tip) == mass and world.joint_damping(joint) == damping
    with pytest.raises(ConfigError, match="'no_joint' is not a movable joint"):
        ScenarioDraw(seed=1, joint_damping=((joint, 0.4),),
                     locked_joint='no_joint').apply_to(world)
    assert world.joint_damping(joint) == damping  # a failed apply leaves nothing behind


def test_time_fraction_scales_with_the_motion():
    scenario = parse_scenario({'emergency_stop': {'time_fraction': 0.5}}, 'f')
    assert scenario.draw(1, JOINTS, 4.0).emergency_stop == 2.0
    assert math.isclose(scenario.draw(1, JOINTS, 1.0).emergency_stop, 0.5)


def test_brakes_need_a_position_or_velocity_controller(tmp_path):
    setup = load_robot('rdt_arm6')
    for text, key in (('locked_joint: {joint: any}\n', 'locked_joint'),
                      ('emergency_stop: {time: 1}\n', 'emergency_stop')):
        scenario = load_scenario(write(tmp_path, text))
        scenario.check_robot(setup.model(), setup.joints, ['position'])
        with pytest.raises(ConfigError, match=rf'case.yaml: {key}: not modelled for a '
                           'controller that commands efforts'):
            scenario.check_robot(setup.model(), setup.joints, ['effort'])


def test_a_scenario_draw_becomes_the_standins_parameters_and_the_planners_sweep():
    """`rdt up --scenario`: the stand-in starts with the draw's dynamics on top of its own
    configured perturbation (read back exactly), the planner sweeps under the whole file."""
    from reverse_digital_twin.core.perturbation import Perturbation
    from reverse_digital_twin.stack import PLANNER_NODE, STANDIN_NODE, scenario_overrides
    overrides, description = scenario_overrides('rdt_arm6', 'edge_cases', 3)
    standin = overrides[STANDIN_NODE]
    back = Perturbation.from_parameters(standin)
    assert standin['perturbation.payload_mass'] == back.payload_mass > 0
    assert f'payload {back.payload_mass:.2f} kg' in description
    assert back.joint_offsets == {'elbow_joint': 0.002}  # config/rdt_arm6.yaml's, kept
    assert Perturbation.from_parameters(back.to_parameters()) == back
    assert overrides[PLANNER_NODE]['sweep.scenario_file'].endswith('edge_cases.yaml')
    assert standin['scenario.file'] == overrides[PLANNER_NODE]['sweep.scenario_file']
    assert standin['scenario.seed'] == 3
    again, _ = scenario_overrides('rdt_arm6', 'edge_cases', 3)
    assert again == overrides  # the same draw for the same seed
    other, _ = scenario_overrides('rdt_arm6', 'edge_cases', 4)
    assert other[STANDIN_NODE] != standin
