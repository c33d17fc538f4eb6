"""Data sets: the embedded (generated) data set and the cache of fitted models."""
