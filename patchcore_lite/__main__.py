"""Entry point: python -m patchcore_lite VERB ..."""

import sys

from .cli import main

sys.exit(main())
