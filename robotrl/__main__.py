import sys

from robotrl.cli import main

sys.exit(main())
