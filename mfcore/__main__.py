"""``python -m mfcore ...``: the command line of :mod:`mfcore.cli`."""
import sys

from .cli import main

sys.exit(main())
