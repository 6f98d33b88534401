"""Core of the twin: robot model, physics, control law. No rclpy imports here."""
