"""Password rules for new passwords: a minimum length and not one of the commonly used passwords."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from core.settings import get_settings
from services.errors import ValidationFailed


@lru_cache
def common_passwords() -> frozenset[str]:
    text = resources.files("services.accounts.data").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def check_new_password(password: str, email: str) -> None:
    """Raise ``ValidationFailed`` (422, the password field) when the password breaks a rule."""
    minimum = get_settings().password_min_length
    lowered = password.strip().lower()
    if len(password) < minimum:
        problem = f"The password needs at least {minimum} characters"
    elif lowered in common_passwords():
        problem = "This password is too common"
    elif lowered in {email.lower(), email.split("@", 1)[0].lower()}:
        problem = "The password must not be the email address"
    elif len(set(password)) < 4:
        problem = "The password needs more different characters"
    else:
        return
    raise ValidationFailed(
        "The request is not valid",
        details=[{"loc": ["body", "password"], "msg": problem, "type": "weak_password"}],
    )
