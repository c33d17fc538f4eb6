"""Teaching layer: the notebooks' views, widget apps and self-checks."""
