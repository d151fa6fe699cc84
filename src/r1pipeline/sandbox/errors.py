"""The one exception of the sandbox."""


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): a run could not be set up or confined.

    Never a program's fault, so never folded into a ``SandboxResult``: scoring such a run as a
    failed program would feed noise into training.
    """
