"""Telegram bots: connecting them, receiving and handling updates, and sending within Telegram's limits."""
