"""The write path benchmark: ``python -m bench`` (see bench/__main__.py and README "Performance")."""
