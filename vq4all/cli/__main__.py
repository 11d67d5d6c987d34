"""``python -m vq4all.cli``: the ``vq4all`` command."""

import sys

from vq4all.cli import main

sys.exit(main())
