"""Launch the robotrl policy node on a robot with a full ROS 2 install (Humble, Jazzy, Kilted).

    ros2 launch policy.launch.py policy:=/path/to/actor.onnx [params_file:=policy.yaml] [autostart:=true]

The node is a lifecycle node; with autostart:=false, drive it with
    ros2 lifecycle set /robotrl_policy configure && ros2 lifecycle set /robotrl_policy activate
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration

HERE = os.path.dirname(os.path.abspath(__file__))


def generate_launch_description():
    policy = LaunchConfiguration("policy")
    params = LaunchConfiguration("params_file")
    autostart = LaunchConfiguration("autostart")
    return LaunchDescription([
        DeclareLaunchArgument("policy", description="actor.onnx exported by 'robotrl export', or pretrained:NAME"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(HERE, "..", "config", "policy.yaml")),
        DeclareLaunchArgument("autostart", default_value="false"),
        # robotrl is a pip package, not an ament package: run its module with the system Python
        ExecuteProcess(
            cmd=["python3", "-m", "robotrl.deploy", policy, "--ros-args", "--params-file", params,
                 "-p", ["policy:=", policy], "-p", ["autostart:=", autostart], "-r", "__node:=robotrl_policy"],
            output="screen"),
    ])
