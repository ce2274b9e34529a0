"""Pure analysis: numbers in, frozen dataclasses out; no I/O, no clock."""
