"""Helper of bench/node_latency.py: a robot's drivers, publishing the arm's state at a fixed rate.

    python bench/_state_publisher.py RATE_HZ SECONDS
"""

import contextlib
import sys
import time

import numpy as np
import rclpy
from geometry_msgs.msg import PointStamped
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

JOINTS = ["shoulder_yaw", "shoulder_pitch", "elbow_pitch", "wrist_roll1", "wrist_pitch", "wrist_roll2"]


def main() -> None:
    rate, seconds = float(sys.argv[1]), float(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node("bench_robot")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    pub_js = node.create_publisher(JointState, "/joint_states", qos)
    pub_goal = node.create_publisher(PointStamped, "/goal", 1)  # RELIABLE, as the node subscribes to goals
    pub_tip = node.create_publisher(PointStamped, "/points/fingertip", qos)
    q = np.array([0.0, 0.3, 1.2, 0.0, 0.8, 0.0])
    end = time.monotonic() + seconds

    def tick() -> None:
        for pub, xyz in ((pub_goal, (0.4, 0.1, 0.5)), (pub_tip, (0.35, 0.05, 0.45))):
            m = PointStamped()
            m.point.x, m.point.y, m.point.z = xyz
            pub.publish(m)
        js = JointState()
        js.header.stamp = node.get_clock().now().to_msg()
        js.name, js.position, js.velocity = JOINTS, [float(x) for x in q], [0.0] * 6
        pub_js.publish(js)
        if time.monotonic() > end:
            raise SystemExit

    node.create_timer(1.0 / rate, tick)
    with contextlib.suppress(SystemExit, KeyboardInterrupt, Exception):
        rclpy.spin(node)
    node.destroy_node()
    if rclpy.ok():
        rclpy.shutdown()


if __name__ == "__main__":
    main()
