"""Runs the tests in the process setup of the entry points (see `weightspace.cli.reuse_freed_host_memory`)."""

from weightspace import cli

cli.reuse_freed_host_memory()
