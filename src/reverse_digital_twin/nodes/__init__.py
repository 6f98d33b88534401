"""Thin rclpy nodes: each declares parameters, wires topics/actions and calls the core."""
