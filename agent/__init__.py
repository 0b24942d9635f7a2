"""framewire's remote agent: a stdlib-only helper that runs next to the images.

It must run on the remote host's own ``python3`` (3.6 or newer), so it imports
nothing outside the standard library and avoids syntax newer than 3.6.
"""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
