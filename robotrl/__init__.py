"""robotrl: train continuous-control robot policies in MuJoCo, export the actor to ONNX, run it on ROS 2.

Importing `robotrl` is cheap and pulls in no torch, gymnasium or mujoco: the robot side
(`robotrl.deploy`) must import on a computer that has only numpy, onnxruntime and rclpy.
"""

__version__ = "0.1.0"
