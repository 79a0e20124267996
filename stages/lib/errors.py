"""One kind of error for bad input (stages.lib.cli.run turns it into a clean exit)."""


class UserError(Exception):
    """Bad input the user can fix: the message names the file and the cause, on one line."""
