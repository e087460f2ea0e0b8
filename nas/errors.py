"""The one exception a user's mistake becomes: the CLI prints it as one line and exits with status 2."""


class UserError(ValueError):
    """A mistake in what the user gave us (a file, a key, a value); never a bug in nas."""


class SpecError(UserError):
    """An architecture spec that is malformed or cannot be built.

    The message always names the field, the value given and what is allowed, e.g.
    ``stages[2].kernel: got 4; allowed: an odd integer from 1 to 11``.
    """

    def __init__(self, field: str, value, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}: got {value!r}; allowed: {allowed}")
