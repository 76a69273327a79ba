"""sampan: a container engine and container cloud on Linux kernel primitives.

The package is layered (see docs/architecture.md); importing it does no work.
"""

__version__ = "0.1.0"
