"""``python -m bench.zoo``: see bench/zoo/run.py."""

import sys

from bench.zoo.run import main

sys.exit(main())
