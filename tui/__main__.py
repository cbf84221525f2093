"""``python -m tui``: the same as the ``buildcage`` command."""

import sys

try:
    from tui.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python was still loading buildcage
    sys.exit(130)

sys.exit(main())
