"""The one exception type users see: a one-line message naming the bad file or argument."""


class PatchCoreError(Exception):
    """Bad input or a refused operation; the CLI prints it as one line and exits non-zero."""
