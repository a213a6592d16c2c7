"""The robot side: runs an exported actor. Imports only numpy, onnxruntime and (optionally) rclpy.

Nothing here may import torch, gymnasium, mujoco or the training code.
"""
