# One-command set-up and runs. `make demo` and `make test` create .venv and install the pinned
# versions (constraints.txt) on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
comma  := ,
# ROS 2 from PyPI exists for x86_64 only; elsewhere the ROS tests skip (a robot brings its own ROS 2).
EXTRAS ?= train,sweep,dev$(if $(filter x86_64,$(shell uname -m)),$(comma)ros,)
STAMP   = $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
RENDER  = $(VENV)/.render-ok

.PHONY: setup demo test bench lint clean

setup: $(STAMP) $(RENDER)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

# Offscreen rendering for videos (robotrl video, train --video): EGL or OSMesa must work; where neither does,
# this installs the system package with apt-get (as root or with passwordless sudo) or says what to install.
$(RENDER): $(STAMP)
	$(BIN)/python -m robotrl.video.render --setup
	touch $@

# Train a small task, evaluate it, plot it.
demo: setup
	rm -rf runs/demo
	$(BIN)/robotrl train ppo robotrl/ArmReach-v0 --steps 150000 --out runs/demo --video
	$(BIN)/robotrl eval runs/demo --episodes 10
	$(BIN)/robotrl plot runs/demo
	$(BIN)/robotrl export runs/demo
	$(BIN)/robotrl eval --onnx runs/demo/actor.onnx --episodes 10
	$(BIN)/robotrl sim2sim runs/demo/actor.onnx --episodes 3
	$(BIN)/robotrl sim2sim pretrained:hopper --episodes 1
	$(BIN)/robotrl sim2sim pretrained:quadruped --episodes 1
	@echo "learning curve: runs/demo/learning_curve.png   metrics: runs/demo/metrics.csv   actor: runs/demo/actor.onnx"
	@echo "video of the final evaluation: runs/demo/video.mp4   (robotrl video runs/demo/actor.onnx --episodes 3)"
	@echo "policy card: $(BIN)/robotrl card runs/demo/actor.onnx   TensorBoard: $(BIN)/tensorboard --logdir runs"

test: setup
	$(BIN)/python -m pytest -q -n 2 --durations=15

bench:
	$(MAKE) setup EXTRAS=train,dev,bench
	$(BIN)/python bench/throughput.py

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs build *.egg-info
