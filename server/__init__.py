"""framewire's server: Slycat's remote API over SSH sessions to remote agents."""

__version__ = "0.1.0"
