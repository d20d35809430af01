"""Search spaces; importing this package registers the built-in ones."""

from harness.spaces import darts, nb201  # noqa: F401  (registration side effects)
