"""Reporters: each turns results into a string; only the CLI writes it anywhere."""
