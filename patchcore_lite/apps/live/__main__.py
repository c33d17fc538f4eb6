"""`python -m patchcore_lite.apps.live --prepare`: the live demo's set-up step (`make present`)."""

import sys

from .environment import main

sys.exit(main())
