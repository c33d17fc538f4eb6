"""Applications on top of the method: the command line, the demo report, the live demo."""
