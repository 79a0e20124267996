"""One kind of error for bad input (stages.lib.cli.run turns it into a clean exit)."""


class UserError(Exception):
    """Bad input the user can fix: the message names the file and the cause, on one line."""


class DocumentError(ValueError):
    """A stored document does not have the shape its type says (documents/record.py): the message
    names the key; the reader adds the file."""


def first_line(exc: BaseException) -> str:
    """A library's exception as the cause in one UserError line (its name when it has no text)."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
