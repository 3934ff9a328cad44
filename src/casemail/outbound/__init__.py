"""Outbound mail: composing, the outbox, delivery."""
