"""All ORM models; importing this package registers every table on ``Base.metadata``."""

from models.assistant import Assistant
from models.base import Base
from models.dialog import TERMINAL_STATUSES, Dialog, DialogStatus, Message, MessageRole, ReplyStatus
from models.user import RefreshToken, Role, User

__all__ = [
    "TERMINAL_STATUSES",
    "Assistant",
    "Base",
    "Dialog",
    "DialogStatus",
    "Message",
    "MessageRole",
    "RefreshToken",
    "ReplyStatus",
    "Role",
    "User",
]
