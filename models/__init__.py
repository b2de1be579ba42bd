"""All ORM models; importing this package registers every table on ``Base.metadata``."""

from models.analytics import UsageRollup
from models.api_key import ApiKey
from models.assistant import Assistant, AssistantPrompt
from models.audit import AuditEvent
from models.base import Base
from models.billing import (
    BALANCE_KINDS,
    DEFAULT_PRICE_MODEL,
    HOLD_KINDS,
    Balance,
    BalanceMismatch,
    CheckoutSession,
    Price,
    PriceKind,
    Transaction,
    TransactionKind,
    UsageRecord,
)
from models.dialog import (
    TERMINAL_STATUSES,
    Dialog,
    DialogSource,
    DialogStatus,
    Message,
    MessageRole,
    ReplyStatus,
)
from models.knowledge import Chunk, Document, DocumentStatus
from models.operator import AssistantOperator, OperatorInvitation
from models.telegram import BotStatus, SendState, TelegramBot, TelegramChat, TelegramSend
from models.user import RefreshToken, Role, User

__all__ = [
    "BALANCE_KINDS",
    "DEFAULT_PRICE_MODEL",
    "HOLD_KINDS",
    "TERMINAL_STATUSES",
    "ApiKey",
    "Assistant",
    "AssistantOperator",
    "AssistantPrompt",
    "AuditEvent",
    "Balance",
    "BalanceMismatch",
    "Base",
    "BotStatus",
    "CheckoutSession",
    "Chunk",
    "Dialog",
    "DialogSource",
    "DialogStatus",
    "Document",
    "DocumentStatus",
    "Message",
    "MessageRole",
    "OperatorInvitation",
    "Price",
    "PriceKind",
    "RefreshToken",
    "ReplyStatus",
    "Role",
    "SendState",
    "TelegramBot",
    "TelegramChat",
    "TelegramSend",
    "Transaction",
    "TransactionKind",
    "UsageRecord",
    "UsageRollup",
    "User",
]
