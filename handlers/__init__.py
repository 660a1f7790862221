"""Entry points: the Lambda handler (and, later, the command line)."""
