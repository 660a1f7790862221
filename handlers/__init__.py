"""Entry points: the Lambda handler and the `cdc-router` command line."""
