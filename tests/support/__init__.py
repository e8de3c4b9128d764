"""Test support: a fake backend, daemon processes, labs."""
