"""`python -m mailgate`: the `mailgate` command (how `serve` starts its worker processes)."""

import sys

from mailgate.cli import main

sys.exit(main())
