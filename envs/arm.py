"""Our own arm: a 6-joint arm with position servos (`assets/arm6.xml`) that must bring its fingertip to
a random goal. Its tasks are the reach template (`envs.reach`) on its robot configs, batched like any
reach task: ``robotrl/ArmReach-v0`` is ``reach:assets/arm6.toml``, ``robotrl/ArmReachHard-v0``
``reach:assets/arm6_hard.toml``.

    robotrl/ArmReach-v0      goals in front of the arm, start from the home pose, success within 5 cm
    robotrl/ArmReachHard-v0  goals all around and below, random start pose, 0.5 kg payload at the
                             tool (the servos sag under it), success within 2 cm held to the end

Action (6): the joint position targets in rad (the servo set-points a ros2_control position
controller takes), bounded by the joint ranges:

    | index | joint           | range [rad]  | servo kp [N m/rad] | torque limit [N m] |
    | 0     | shoulder_yaw    | -2.9 .. 2.9  | 150                | 80                 |
    | 1     | shoulder_pitch  | -1.9 .. 1.9  | 300                | 150                |
    | 2     | elbow_pitch     | -2.4 .. 2.4  | 200                | 100                |
    | 3     | wrist_roll1     | -2.9 .. 2.9  | 30                 | 20                 |
    | 4     | wrist_pitch     | -2.0 .. 2.0  | 30                 | 20                 |
    | 5     | wrist_roll2     | -2.9 .. 2.9  | 10                 | 10                 |

Observation (18):

    | index | element                                  | unit  |
    | 0-5   | joint_pos of the six joints, in order    | rad   |
    | 6-11  | joint_vel of the six joints              | rad/s |
    | 12-14 | goal x, y, z (world = arm base frame)    | m     |
    | 15-17 | fingertip minus goal, x, y, z            | m     |

Reward per step: ``-distance_weight * |fingertip - goal| - velocity_weight * |qvel|^2``; each term is
in ``info["reward_terms"]`` and as ``info["reward_distance"]``, ``info["reward_velocity"]``. Control at
50 Hz (frame skip 10 of a 2 ms physics step). Goals are drawn by forward kinematics of random joint
positions (shoulder_yaw, shoulder_pitch, elbow_pitch and wrist_pitch uniform over the config's
``goal_ranges``, the wrist rolls at home), so every goal is reachable, and drawn again below 8 cm.
``info["is_success"]``: the fingertip is within the tolerance at this step. The hard variant starts
from home + uniform(-0.8, 0.8) rad on every joint (always inside 90 % of each joint's range, where the
arm's own env, before it became a reach task, clipped the start) and evaluation counts success at an
episode's last step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parent / "assets"
ASSET = ASSETS / "arm6.xml"
CONFIG, HARD_CONFIG = ASSETS / "arm6.toml", ASSETS / "arm6_hard.toml"
JOINTS = ("shoulder_yaw", "shoulder_pitch", "elbow_pitch", "wrist_roll1", "wrist_pitch", "wrist_roll2")
HOME = np.array([0.0, 0.3, 1.2, 0.0, 0.8, 0.0])  # the configs' default pose
