"""``python -m llamanb.server --model PATH [--host 127.0.0.1 --port 8000]``."""

import sys

from .command import main

sys.exit(main())
