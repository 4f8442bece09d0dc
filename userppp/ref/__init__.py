"""Pure-Python reference twins of the C core (cext/), same signatures as the
wrappers in :mod:`userppp.core`.

They are written to be read, not to be fast: the property tests check the C
core against them, and ``USERPPP_PURE=1`` selects them for debugging.
"""
