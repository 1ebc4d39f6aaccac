"""The measuring side of archbench: the static profile, the run folder and the CLI."""
