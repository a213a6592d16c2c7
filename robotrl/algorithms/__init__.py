"""The learning algorithms, each file its paper's update: PPO and TRPO on the on-policy core (`onpolicy.py`:
rollouts, GAE, the actor-critic), DDPG, TD3 and SAC on the off-policy core (`offpolicy.py`: replay, target
networks, exploration, the acting loop). `robotrl.algos` names them for the CLI and loads them on demand."""
