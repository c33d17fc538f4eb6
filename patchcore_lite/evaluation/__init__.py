"""Evaluation: MVTec AD metrics and protocol (no plotting), then figures and the HTML report."""
