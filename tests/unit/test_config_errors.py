"""Unit tests for configuration errors: URDF, scene YAML and file resolution.

Every ConfigError must say which file and which key or element is wrong. No ROS.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from reverse_digital_twin.core import paths
from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.robot_model import load_robot_model, parse_urdf
from reverse_digital_twin.core.scene import load_scene

URDF = """<?xml version="1.0"?>
<robot name="two_link">
  <link name="base"/>
  <link name="upper"/>
  <link name="lower"/>
  <joint name="shoulder" type="revolute">
    <parent link="base"/><child link="upper"/>
    <origin xyz="0 0 0.1" rpy="0 0 0"/>
    <axis xyz="0 0 1"/>
    <limit lower="-1.5" upper="1.5" velocity="2.0" effort="30"/>
  </joint>
  <joint name="elbow" type="continuous">
    <parent link="upper"/><child link="lower"/>
    <limit velocity="3.0" effort="10"/>
  </joint>
</robot>
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --------------------------------------------------------------------------- URDF
def test_valid_urdf_parses(tmp_path):
    model = load_robot_model(write(tmp_path, 'arm.urdf', URDF))
    assert model.name == 'two_link'
    assert [j.name for j in model.movable_joints] == ['shoulder', 'elbow']
    assert model.root_link == 'base'
    shoulder = model.joint('shoulder')
    assert (shoulder.limits.lower, shoulder.limits.upper) == (-1.5, 1.5)
    assert shoulder.limits.velocity == 2.0 and shoulder.limits.effort == 30.0
    elbow = model.joint('elbow')
    assert not elbow.limits.position_bounded()
    assert elbow.limits.velocity == 3.0


def test_missing_urdf_file(tmp_path):
    missing = tmp_path / 'nowhere' / 'arm.urdf'
    with pytest.raises(ConfigError, match='not found') as exc:
        load_robot_model(missing)
    assert str(missing) in str(exc.value)


def test_invalid_xml_names_the_file(tmp_path):
    path = write(tmp_path, 'broken.urdf', '<robot name="x"><link name="a"></robot>')
    with pytest.raises(ConfigError, match='not valid XML') as exc:
        load_robot_model(path)
    assert str(path) in str(exc.value)


def test_invalid_xml_names_the_source():
    with pytest.raises(ConfigError) as exc:
        parse_urdf('<robot', source='my_robot.urdf')
    assert 'my_robot.urdf' in str(exc.value)


def test_root_element_must_be_robot():
    with pytest.raises(ConfigError, match='<robot>'):
        parse_urdf('<sdf/>', source='model.sdf')


@pytest.mark.parametrize('jtype', ['revolute', 'prismatic'])
def test_joint_without_limit(tmp_path, jtype):
    text = URDF.replace('type="revolute"', f'type="{jtype}"').replace(
        '<limit lower="-1.5" upper="1.5" velocity="2.0" effort="30"/>', '')
    path = write(tmp_path, 'nolimit.urdf', text)
    with pytest.raises(ConfigError) as exc:
        load_robot_model(path)
    message = str(exc.value)
    assert str(path) in message and 'shoulder' in message and '<limit>' in message


def test_non_numeric_limit(tmp_path):
    path = write(tmp_path, 'badlimit.urdf', URDF.replace('upper="1.5"', 'upper="lots"'))
    with pytest.raises(ConfigError) as exc:
        load_robot_model(path)
    message = str(exc.value)
    assert str(path) in message and 'shoulder' in message and 'upper' in message


def test_bad_origin_vector(tmp_path):
    path = write(tmp_path, 'origin.urdf', URDF.replace('xyz="0 0 0.1"', 'xyz="0 0"'))
    with pytest.raises(ConfigError) as exc:
        load_robot_model(path)
    message = str(exc.value)
    assert str(path) in message and 'shoulder' in message and 'xyz' in message


def test_joint_without_parent(tmp_path):
    path = write(tmp_path, 'orphan.urdf', URDF.replace('<parent link="upper"/>', ''))
    with pytest.raises(ConfigError) as exc:
        load_robot_model(path)
    assert 'elbow' in str(exc.value) and 'parent' in str(exc.value)


def test_check_joints_names_unknown_joints(tmp_path):
    model = load_robot_model(write(tmp_path, 'arm.urdf', URDF))
    model.check_joints(['shoulder', 'elbow'], 'controller joints')
    with pytest.raises(ConfigError) as exc:
        model.check_joints(['shoulder', 'wrist'], 'controller joints')
    assert 'wrist' in str(exc.value) and 'controller joints' in str(exc.value)
    with pytest.raises(ConfigError, match='duplicated'):
        model.check_joints(['shoulder', 'shoulder'], 'controller joints')


# --------------------------------------------------------------------------- scene
@pytest.fixture
def box_urdf(tmp_path) -> Path:
    return write(tmp_path, 'box.urdf', '<robot name="box"><link name="b"/></robot>')


def scene_file(tmp_path: Path, text: str) -> Path:
    return write(tmp_path, 'scene.yaml', text)


def test_valid_scene(tmp_path, box_urdf):
    path = scene_file(tmp_path, f"""
world_frame: map
gravity: [0, 0, -9.8]
robot:
  base_position: [0, 0, 0.5]
objects:
  - name: box
    urdf: {box_urdf}
    position: [1, 0, 0]
    fixed: false
""")
    scene = load_scene(path)
    assert scene.world_frame == 'map'
    assert scene.gravity == (0.0, 0.0, -9.8)
    assert scene.robot_position == (0.0, 0.0, 0.5)
    assert scene.objects[0].urdf == box_urdf
    assert scene.objects[0].position == (1.0, 0.0, 0.0)
    assert not scene.objects[0].fixed


def test_empty_scene_gives_defaults(tmp_path):
    scene = load_scene(scene_file(tmp_path, ''))
    assert scene.world_frame == 'world' and scene.objects == ()


def test_missing_scene_file(tmp_path):
    missing = tmp_path / 'no_scene.yaml'
    with pytest.raises(ConfigError, match='not found') as exc:
        load_scene(missing)
    assert str(missing) in str(exc.value)


def test_unknown_top_level_key(tmp_path):
    path = scene_file(tmp_path, 'world_frame: world\ngravty: [0, 0, -9.81]\n')
    with pytest.raises(ConfigError) as exc:
        load_scene(path)
    message = str(exc.value)
    assert str(path) in message and 'gravty' in message
    assert 'gravity' in message  # lists what is allowed


def test_unknown_robot_key(tmp_path):
    path = scene_file(tmp_path, 'robot:\n  base_pos: [0, 0, 0]\n')
    with pytest.raises(ConfigError) as exc:
        load_scene(path)
    message = str(exc.value)
    assert str(path) in message and 'robot' in message and 'base_pos' in message


def test_unknown_object_key(tmp_path, box_urdf):
    path = scene_file(tmp_path, f'objects:\n  - name: box\n    urdf: {box_urdf}\n    mass: 3\n')
    with pytest.raises(ConfigError) as exc:
        load_scene(path)
    message = str(exc.value)
    assert str(path) in message and 'objects[0]' in message and 'mass' in message


@pytest.mark.parametrize('value', ['[0, -9.81]', '[0, 0, x]', '"down"', '[0, 0, .nan]',
                                   '[0, 0, 0, 0]'])
def test_bad_vector(tmp_path, value):
    path = scene_file(tmp_path, f'gravity: {value}\n')
    with pytest.raises(ConfigError) as exc:
        load_scene(path)
    message = str(exc.value)
    assert str(path) in message and 'gravity' in message


def test_bad_object_position(tmp_path, box_urdf):
    path = scene_file(tmp_path, f'objects:\n  - name: box\n    urdf: {box_urdf}\n'
                                f'    position: [1, 2]\n')
    with pytest.raises(ConfigError) as exc:
        load_scene(path)
    message = str(exc.value)
    assert str(path) in message and 'objects[0].position' in message


def test_object_missing_urdf(tmp_path):
    path = scene_file(tmp_path, 'objects:\n  - name: box\n')
    with pytest.raises(ConfigError) as exc:
        load_scene(path)
    assert str(path) in str(exc.value) and 'urdf' in str(exc.value)


def test_object_urdf_not_found(tmp_path):
    path = scene_file(tmp_path, 'objects:\n  - name: box\n    urdf: /no/such/box.urdf\n')
    with pytest.raises(ConfigError) as exc:
        load_scene(path)
    message = str(exc.value)
    assert '/no/such/box.urdf' in message and 'objects[0].urdf' in message


def test_duplicate_object_names(tmp_path, box_urdf):
    path = scene_file(tmp_path, f'objects:\n  - name: box\n    urdf: {box_urdf}\n'
                                f'  - name: box\n    urdf: {box_urdf}\n')
    with pytest.raises(ConfigError, match='unique'):
        load_scene(path)


def test_invalid_yaml(tmp_path):
    path = scene_file(tmp_path, 'objects: [\n')
    with pytest.raises(ConfigError, match='YAML') as exc:
        load_scene(path)
    assert str(path) in str(exc.value)


def test_top_level_must_be_a_mapping(tmp_path):
    path = scene_file(tmp_path, '- a\n- b\n')
    with pytest.raises(ConfigError, match='mapping') as exc:
        load_scene(path)
    assert str(path) in str(exc.value)


# --------------------------------------------------------------------------- paths
def test_resolve_absolute(tmp_path, box_urdf):
    assert paths.resolve(str(box_urdf)) == box_urdf


def test_resolve_relative_to_working_directory(tmp_path, box_urdf, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.resolve('box.urdf') == tmp_path / 'box.urdf'


def test_resolve_relative_to_share_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    share = tmp_path / 'share'
    (share / 'urdf').mkdir(parents=True)
    (share / 'urdf' / 'x.urdf').write_text('<robot/>')
    monkeypatch.setattr(paths, 'share_dir', lambda: share)
    assert paths.resolve('urdf/x.urdf') == share / 'urdf' / 'x.urdf'


def test_resolve_missing_relative_lists_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    share = tmp_path / 'share'
    monkeypatch.setattr(paths, 'share_dir', lambda: share)
    with pytest.raises(ConfigError) as exc:
        paths.resolve('urdf/missing.urdf', 'scene object urdf')
    message = str(exc.value)
    assert 'scene object urdf' in message and 'urdf/missing.urdf' in message
    assert str(tmp_path / 'urdf' / 'missing.urdf') in message
    assert str(share / 'urdf' / 'missing.urdf') in message


def test_resolve_missing_absolute(tmp_path):
    missing = tmp_path / 'gone.urdf'
    with pytest.raises(ConfigError, match='not found') as exc:
        paths.resolve(str(missing))
    assert str(missing) in str(exc.value)


def test_resolve_pybullet_data_missing():
    pytest.importorskip('pybullet_data')
    with pytest.raises(ConfigError) as exc:
        paths.resolve('pybullet_data:no_such_model.urdf', 'object urdf')
    assert 'no_such_model.urdf' in str(exc.value)


def test_resolve_own_package_url(tmp_path, monkeypatch):
    share = tmp_path / 'share'
    (share / 'config').mkdir(parents=True)
    (share / 'config' / 'a.yaml').write_text('{}')
    monkeypatch.setattr(paths, 'share_dir', lambda: share)
    assert paths.resolve(f'package://{paths.PACKAGE}/config/a.yaml') == share / 'config' / 'a.yaml'
    with pytest.raises(ConfigError) as exc:
        paths.resolve(f'package://{paths.PACKAGE}/config/b.yaml')
    assert str(share / 'config' / 'b.yaml') in str(exc.value)
