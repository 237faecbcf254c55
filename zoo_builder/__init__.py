"""Builds zoos of trained LSTMs: many runs at once, vmapped and sharded."""
