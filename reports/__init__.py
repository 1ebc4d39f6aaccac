"""Turning a run's results table into tables and charts. Knows nothing of ``bench``."""
