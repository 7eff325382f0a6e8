"""Errors meant for users: the CLI and pipeline scripts print them without a traceback."""


class UserError(Exception):
    """A problem the user can fix (bad params, missing data); exit code 2."""
