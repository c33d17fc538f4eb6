"""Entry point: python -m patchcore_lite VERB ... (Ctrl-C at any moment ends with exit 130)."""

import sys

try:
    from .apps.cli import main

    code = main()
except KeyboardInterrupt:
    print("error: interrupted", file=sys.stderr)
    code = 130
sys.exit(code)
