"""Test helpers shared by every room: oracles, fixtures, the CLI runner."""
