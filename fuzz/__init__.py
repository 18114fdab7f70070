"""Fuzz harnesses for every parser that meets outside input (`python -m fuzz.run`, `make fuzz`)."""
