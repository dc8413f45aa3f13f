"""``python -m llamanb``: the same as the ``llamanb`` command."""

import sys

from .cli import main

sys.exit(main())
