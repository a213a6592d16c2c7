"""A training run: the loop (`train.py`), its settings (`settings.py`), the run directory it writes and the one
place its files are read (`rundir.py`), metrics to CSV and TensorBoard (`logger.py`, `tbevents.py`), the learning
curve (`plot.py`), evaluation (`evaluate.py`) and the env copies it steps in worker processes (`vec_env.py`)."""
