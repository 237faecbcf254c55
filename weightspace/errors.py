"""The errors that mean the user's command, config, files or environment must change, not the code.

Every entry point reports them (and the OS's own errors: a workdir that is a file, a read-only
directory) as one line naming the cause and the fix, with exit status 2 (`cli.one_line_errors`); any
other exception is a bug and keeps its traceback. `WEIGHTSPACE_TRACEBACK=1` shows the traceback of
these too.
"""


class UserError(Exception):
    """A problem the user fixes (the message says how); the base of the project's own errors."""


class ConfigError(UserError, ValueError):
    """Config values out of range, or a config that does not fit its zoo."""
