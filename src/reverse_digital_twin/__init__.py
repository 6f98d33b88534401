"""Reverse digital twin: a PyBullet twin that leads a ROS 2 arm through the driver's interface."""
__version__ = '0.1.0'
