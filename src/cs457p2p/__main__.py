"""``python -m cs457p2p``: the same as the ``cs457p2p`` command."""

import sys

from .cli.main import main

sys.exit(main())
