"""Channels: the intakes into cases."""
