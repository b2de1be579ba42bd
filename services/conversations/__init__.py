"""Conversations: dialogs and their messages, who may see them, operators, the anonymous widget."""
