"""The outer ring: everything that touches file descriptors, clocks and processes."""
