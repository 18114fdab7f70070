"""`const` for every firmware module: MicroPython's own, or on CPython a stand-in that returns its argument.

Import it by that name (`from compat import const`): the MicroPython compiler folds `_NAME = const(...)`
wherever the call is spelled `const`, and keeps underscore names out of the module's globals.
"""

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc,no-redef]
        return x
