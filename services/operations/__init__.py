"""Keeping the platform healthy: the queue canary, retention of old dialogs."""
