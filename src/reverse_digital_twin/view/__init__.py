"""The web view's plain parts (no rclpy): what to draw from the graph's messages, and the page.

``scene`` turns markers, clouds, images and statuses into drawable data; ``page`` draws them
with viser. The rclpy side is nodes/web_view_node.py.
"""
