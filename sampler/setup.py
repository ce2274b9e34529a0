"""The extension's build: one C file, no dependency (metadata in pyproject.toml)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("memgate_sampler", sources=["memgate_sampler.c"])])
