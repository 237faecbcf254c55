"""weightspace: learning useful representations of recurrent-network weights."""

__version__ = "0.1.0"
