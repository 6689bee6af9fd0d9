"""``python -m fastbce`` runs the command line."""

import sys

from .cli import entry_point

sys.exit(entry_point())
