"""``python -m w2sbench``: the command line (also under ``accelerate launch -m w2sbench``)."""

import sys

from w2sbench.cli import main

sys.exit(main())
