"""The simulated robot: MuJoCo behind the topics a real robot's drivers publish, and sim-to-sim.

`node.SimRobot` plays a task's env behind ROS 2 (joint states, odometry, IMU, goal and points, as
`sensors.RobotSensors` reads them off the simulation), takes the policy node's commands and reports its episodes;
`sim2sim.run` drives it with the very node that drives hardware (`robotrl.deploy.node.PolicyNode`) and compares the
returns with the in-process evaluation. This is the simulation side: it imports mujoco, gymnasium and the robot side;
`robotrl.deploy` (what a robot computer installs) imports nothing from here.
"""
