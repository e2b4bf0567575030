"""Errors a user can fix. The CLI prints their message (no traceback) and exits with code 2."""


class UserError(Exception):
    """A mistake in the user's input (config, data file, checkpoint, option...).

    The message must say what is wrong, naming the input (key path, file and line), and how
    to fix it. Raised anywhere; the CLI turns it into one clear line on stderr.
    """
