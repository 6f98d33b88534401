"""ament_python package: the reverse digital twin (PyBullet twin + driver-compatible nodes)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'reverse_digital_twin'


def data(directory: str, pattern: str = '*') -> tuple[str, list[str]]:
    """Install repo files under share/<package>/<directory>, as ros2 launch expects."""
    return (f'share/{PACKAGE}/{directory}', sorted(glob(f'{directory}/{pattern}')))


setup(
    name=PACKAGE,
    version='0.1.0',
    package_dir={'': 'src'},
    packages=find_packages('src'),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        data('launch', '*.launch.py'),
        data('config', '*.yaml'),
        data('config', '*.rviz'),
        data('config/scenarios', '*.yaml'),
        data('urdf', '*.urdf'),
        data('policies', '*.npz'),
    ],
    install_requires=['setuptools'],
    # colcon test runs pytest from the package directory (pytest.ini: testpaths = tests);
    # tests/launch holds the launch_testing tests of both launch files.
    extras_require={'test': ['pytest', 'pytest-timeout']},
    zip_safe=True,
    maintainer='reverse_digital_twin maintainers',
    maintainer_email='maintainers@reverse-digital-twin.org',
    description='PyBullet twin that leads a ROS 2 arm through a joint_trajectory_controller '
                'interface',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'rdt = reverse_digital_twin.cli:main',
            'sim_node = reverse_digital_twin.nodes.sim_node:main',
            'emulated_controller = reverse_digital_twin.nodes.emulated_controller_node:main',
            'bridge = reverse_digital_twin.nodes.bridge_node:main',
            'standin_robot = reverse_digital_twin.nodes.standin_node:main',
            'planner = reverse_digital_twin.nodes.planner_node:main',
            'recorder = reverse_digital_twin.nodes.recorder_node:main',
            'camera = reverse_digital_twin.nodes.camera_node:main',
            'web_view = reverse_digital_twin.nodes.web_view_node:main',
            'prediction_view = reverse_digital_twin.nodes.prediction_view_node:main',
            'policy = reverse_digital_twin.nodes.policy_node:main',
        ],
    },
)
