"""``python -m server.cli``: the ``framewire`` command."""

import sys

from .main import main

sys.exit(main())
