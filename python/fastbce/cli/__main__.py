"""``python -m fastbce.cli`` runs the command line, as ``python -m fastbce`` does."""

import sys

from . import entry_point

sys.exit(entry_point())
