"""Accounts: sign-up and sign-in, passwords, lockout, the audit log, admins managing users."""
