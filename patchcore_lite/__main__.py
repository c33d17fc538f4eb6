"""Entry point: python -m patchcore_lite VERB ..."""

import sys

from .apps.cli import main

sys.exit(main())
