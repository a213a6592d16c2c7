"""``python -m robotrl.deploy actor.onnx [--ros-args -p name:=value ...]``: the policy node."""

import sys

from robotrl.cli import main

sys.exit(main(["deploy", *sys.argv[1:]]))
