"""The learning algorithms, each file its paper's update: PPO and TRPO on the on-policy core (`onpolicy.py`:
rollouts, GAE, the actor-critic), DDPG, TD3 and SAC on the off-policy core (`offpolicy.py`: replay, target
networks, exploration, the acting loop). `registry.py` names them for the CLI and loads them on demand; the parts
they share: `core.py` (what the training loop needs from an algorithm), `functional.py` (GAE, log-probabilities),
`buffers.py`, `noise.py`, `optim.py`."""
