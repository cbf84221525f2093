"""``python -m tui``: the same as the ``buildcage`` command."""

import sys

from tui.cli import main

sys.exit(main())
