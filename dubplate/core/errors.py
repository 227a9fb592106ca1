"""The one exception type a user sees: its message names the file, frame or field at fault."""


class DubplateError(Exception):
    """A problem with the user's input or environment, reported in one line without a traceback."""
