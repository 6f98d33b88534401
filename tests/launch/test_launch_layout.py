"""Checks of the launch tests that run everywhere (no launch install needed)."""
import ast
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


@pytest.mark.parametrize('launch_file', ['sim.launch.py', 'twin.launch.py'])
def test_each_launch_file_has_a_launch_test(launch_file):
    test = HERE / f'test_{launch_file.split(".")[0]}_launch.py'
    tree = ast.parse(test.read_text())
    functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert 'generate_test_description' in functions
    assert f"'{launch_file}'" in test.read_text()
    assert (ROOT / 'launch' / launch_file).is_file()


def test_package_declares_the_launch_test_dependencies():
    package = (ROOT / 'package.xml').read_text()
    for dependency in ('launch_testing', 'launch_testing_ros', 'python3-pytest'):
        assert f'<test_depend>{dependency}</test_depend>' in package
