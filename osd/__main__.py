"""``python -m osd`` is the ``osd`` command."""

import sys

from .cli import main

sys.exit(main())
