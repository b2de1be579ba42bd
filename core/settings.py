"""Every setting of ChatAI, read from the environment (prefix ``CHATAI_``)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_JWT_SECRET = "change-me-this-is-the-development-only-secret"
MIN_SECRET_BYTES = 32


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_exposed_development(settings: Settings, listen_host: str) -> None:
    """Refuse to serve other machines with the development secret unless development was chosen.

    ``CHATAI_ENV`` unset means development, which is right on a laptop (the API on 127.0.0.1) and wrong
    on a server that forgot the setting: there anyone could sign tokens with the published secret.
    """
    chosen = "env" in settings.model_fields_set
    if not chosen and settings.jwt_secret == DEFAULT_JWT_SECRET and not is_loopback(listen_host):
        raise ValueError(
            f"The API would listen on {listen_host} with the development JWT secret and CHATAI_ENV unset: "
            "set CHATAI_ENV=production and a real CHATAI_JWT_SECRET (or CHATAI_ENV=development to "
            "accept the risk), or listen on 127.0.0.1"
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHATAI_", env_file=".env", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".data")
    # The console's static export (web/out after `npm run build`); unset: the repository's web/out.
    console_dir: Path | None = None

    # Infrastructure. Unset DATABASE_URL means the embedded Postgres under data_dir.
    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL"))
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL"))
    celery_broker_url: str | None = Field(default=None, validation_alias=AliasChoices("CELERY_BROKER_URL"))
    db_pool_size: int = 20
    db_max_overflow: int = 10
    # How long a unit of work waits for a pooled connection before it fails as unavailable (503 / retry).
    db_pool_timeout_seconds: float = 30.0
    # DATABASE_URL points at a PgBouncer in transaction mode: no server-side prepared statements, since
    # the next transaction may run on another server connection (PgBouncer before 1.21, or without
    # max_prepared_statements, does not track them).
    db_pgbouncer: bool = False
    redis_max_connections: int = 200

    # Auth.
    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_issuer: str = "chatai"
    jwt_audience: str = "chatai"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    widget_session_ttl_seconds: int = 3600  # the widget opens a new session when its token expires
    # Signs widget visitors' resume tokens and keys their labels for staff. Unset: derived from jwt_secret.
    # Changing it makes every visitor a new one (their dialogs stay, unreachable to them).
    widget_secret: str | None = None
    signup_credit_micros: int | None = None
    # Verification accepts these algorithms only (never "none"); tokens are signed with the first.
    jwt_algorithms: list[Literal["HS256", "HS384", "HS512"]] = ["HS256"]
    # The key id (``kid`` header) of jwt_secret; earlier keys stay valid for verification until removed.
    jwt_key_id: str = "k1"
    jwt_previous_keys: dict[str, str] = {}
    password_min_length: int = 10
    login_max_failures: int = 10  # failed logins of one email from one address before that address is locked
    login_lockout_seconds: int = 900  # also the window failures are counted in
    # Failed logins of one email over all addresses after which addresses it has not logged in from
    # wait a delay that doubles with each further failure (429 with Retry-After).
    login_delay_after_failures: int = 5
    login_delay_base_seconds: float = 1.0
    login_delay_max_seconds: float = 300.0
    login_known_address_days: int = 90  # how long a successful login's address skips those delays
    # Browser sessions: HttpOnly token cookies plus a readable CSRF cookie (double-submit).
    cookie_secure: bool = True
    cookie_samesite: Literal["lax", "strict", "none"] = "lax"
    cookie_domain: str | None = None
    cors_allow_origins: list[str] = []  # the dashboard's origins
    max_body_bytes: int = 1024 * 1024  # request bodies other than uploads

    # Rate limits, in the notation of the ``limits`` library ("10/minute"), counted in Redis.
    rate_limits_enabled: bool = True
    rate_limit_login_per_ip: str = "30/minute"
    rate_limit_login_per_email: str = "10/minute"
    rate_limit_register_per_ip: str = "20/hour"
    rate_limit_register_per_email: str = "5/hour"
    rate_limit_messages_per_user: str = "60/minute"
    rate_limit_uploads_per_user: str = "60/hour"
    rate_limit_searches_per_user: str = "30/minute"
    rate_limit_widget_sessions_per_ip: str = "30/minute"
    rate_limit_widget_sessions_per_assistant: str = "600/minute"
    rate_limit_api_key: str = "60/minute"  # /v1 requests of one API key
    # Messages all visitors of one assistant's widget may send together (an assistant may set its own).
    widget_messages_per_minute: int = 120
    widget_messages_per_day: int = 5000
    max_concurrent_generations_per_assistant: int = 50  # queued or generating replies

    # Admission control: a new message is refused (503 with Retry-After) instead of waiting for seconds
    # when this API process already serves this many requests, or this many replies wait in the broker's
    # ``llm`` queue (read at most every admission_backlog_ttl_seconds). 0 switches a check off.
    admission_max_in_flight: int = 256
    admission_max_queued_replies: int = 2000
    admission_backlog_ttl_seconds: float = 0.5
    admission_retry_after_seconds: int = 2
    generation_slot_lease_seconds: int = 900  # a slot whose reply never ended is freed after this

    # LLM.
    llm_provider: Literal["openai", "offline"] = "offline"
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = 60.0
    llm_connect_timeout_seconds: float = 10.0
    llm_max_attempts: int = 4
    llm_retry_base_seconds: float = 0.5
    llm_context_tokens: int = 8192
    llm_default_max_tokens: int = 1024
    llm_history_messages: int = 50
    offline_token_delay_ms: float = 20.0

    # Embeddings (used by the knowledge base).
    embedding_provider: Literal["local", "openai"] = "local"
    embedding_base_url: str | None = None
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_api_key: str | None = None
    embedding_dimensions: int = 384
    embedding_batch_size: int = 32
    embedding_max_attempts: int = 4
    embedding_threads: int = 1  # torch threads per worker process (prefork runs one process per core)

    # Knowledge base: uploads, chunking, indexing and retrieval.
    max_upload_bytes: int = 20 * 1024 * 1024
    chunk_tokens: int = 200
    chunk_overlap_tokens: int = 40
    retrieval_top_k: int = 5
    retrieval_min_score: float = 0.3  # cosine similarity a passage needs to be used
    retrieval_candidates: int = 40  # rows each ranking (vector, full text) contributes to the fusion
    retrieval_ef_search: int = 100
    retrieval_max_scan_tuples: int = 50_000
    retrieval_iterative_scan: Literal["relaxed_order", "strict_order"] = "relaxed_order"
    knowledge_context_tokens: int = 2000  # prompt budget for retrieved passages
    document_time_limit_seconds: int = 900
    document_silence_seconds: float = 120.0
    document_max_attempts: int = 3
    query_embedding_timeout_seconds: float = 15.0
    # What one document may expand to. Parsing runs in a child process under these rlimits; a document
    # past any limit fails with error_code document_too_large and is not retried.
    document_max_pages: int = 2000
    document_max_chars: int = 5_000_000
    document_max_unpacked_bytes: int = 200 * 1024 * 1024  # zip members and PDF content streams
    document_max_compression_ratio: float = 100.0  # per zip member larger than 1 MiB unpacked
    parse_memory_bytes: int = 1024 * 1024 * 1024  # RLIMIT_AS of the parsing child
    parse_cpu_seconds: int = 120  # RLIMIT_CPU of the parsing child

    # Telegram.
    telegram_api_base: str = "https://api.telegram.org"
    public_base_url: str = "http://127.0.0.1:8000"
    # Fernet keys for bot tokens at rest, comma-separated: the first encrypts, every one decrypts (rotation).
    # Required in production; unset elsewhere: one key generated into data_dir (core/secretbox.py).
    telegram_token_keys: str | None = None
    # Also decrypt with the keys earlier versions derived from the JWT secrets (rows written before
    # telegram_token_keys existed); off once `chatai rotate-bot-tokens` has re-encrypted them.
    telegram_token_legacy_keys: bool = True
    # True: bots get a webhook at public_base_url. False: the bot pool (workers/telegram_poller.py)
    # long-polls them. Unset: webhooks when public_base_url is https (Telegram calls only https URLs).
    telegram_webhooks: bool | None = None
    telegram_webhook_max_connections: int = 40
    telegram_bot_messages_per_second: int = 30
    telegram_chat_interval_seconds: float = 1.0
    telegram_group_messages_per_minute: int = 20
    # Added to each chat's and group's limit window, so a send delayed on its way (a busy worker, the
    # network) does not arrive too soon after the previous one.
    telegram_limit_margin_seconds: float = 0.25
    telegram_send_max_attempts: int = 5
    # Replies of one bot generated but not yet sent; a bot's further messages wait in its own queue, so a
    # bot sent more than it may answer does not fill the llm queue ahead of other bots.
    telegram_bot_replies_in_flight: int = 30
    telegram_poll_timeout_seconds: int = 25
    telegram_poll_lease_seconds: float = 15.0
    telegram_webhook_check_seconds: float = 300.0
    # Beat re-sends what chats were owed this long ago and still wait for (a delivery lost with a worker).
    telegram_send_sweep_seconds: float = 60.0

    # Events and delivery.
    event_retention_seconds: int = 3600
    delta_coalesce_ms: float = 50.0
    # Beyond this many generations in one worker process the window grows in proportion, up to the max.
    delta_coalesce_busy_replies: int = 10
    delta_coalesce_max_ms: float = 250.0
    # Celery task events (a broker publish per task state change); Flower turns them on while it watches.
    task_events: bool = False
    ws_send_queue_size: int = 2000
    ws_auth_timeout_seconds: float = 10.0
    ws_replay_page_size: int = 500
    # The hub PINGs its idle pub/sub connection after this long and reconnects if two periods pass silent.
    ws_pubsub_health_seconds: float = 5.0

    # Workers and the reaper of silent replies.
    reply_time_limit_seconds: int = 600
    reply_heartbeat_seconds: float = 5.0
    reply_silence_seconds: float = 30.0
    reply_max_attempts: int = 3
    reaper_interval_seconds: float = 15.0
    # A reply no worker has claimed this long after it was accepted has its task sent once more (it may
    # have been lost with the broker); much sooner than the queued silence of ten silence periods.
    unclaimed_resend_seconds: float = 60.0
    idempotency_window_seconds: int = 24 * 3600

    # Scheduler (beat). Only the beat process holding the Redis lock sends jobs; a standby takes over
    # about one TTL after the active one dies.
    beat_lock_ttl_seconds: float = 30.0
    # Rollups recompute the current and previous period each run (idempotent upserts), so a period is
    # final one run after it ends.
    analytics_enabled: bool = True
    analytics_hourly_rollup_seconds: float = 600.0
    analytics_daily_rollup_seconds: float = 3600.0
    # A ping to every queue; a queue whose ping is not consumed within canary_stale_seconds is flagged.
    canary_enabled: bool = True
    canary_interval_seconds: float = 60.0
    canary_stale_seconds: float = 180.0
    # Retention: dialogs whose last activity is older than this many days are deleted (unset: kept).
    dialog_retention_days: int | None = None
    retention_interval_seconds: float = 3600.0

    # Billing. Off means no holds and no charges (benchmarks compare the accept path with and without).
    billing_enabled: bool = True
    billing_currency: str = "USD"
    reconcile_enabled: bool = True
    reconcile_interval_seconds: float = 3600.0
    # Terminal replies whose hold is still open after this long are settled by the sweep.
    billing_hold_sweep_seconds: float = 120.0
    # Finished replies queue their settlement in Redis; one billing task books up to this many per
    # transaction, after lingering this long so that a busy second fills a batch.
    billing_settle_batch_size: int = 200
    billing_settle_linger_seconds: float = 0.2
    stripe_api_key: str | None = None
    stripe_api_base: str = "https://api.stripe.com"
    stripe_webhook_secret: str | None = None
    stripe_success_url: str | None = None  # default: public_base_url + "/billing/success"
    stripe_cancel_url: str | None = None  # default: public_base_url + "/billing/cancel"

    # Operators.
    # Each worker process serves /metrics on metrics_port + its queue's offset (llm 1, embeddings 2,
    # telegram 3, billing 4, analytics 5, queries 6) unless worker_metrics_port names its port; 0 turns
    # them off.
    metrics_port: int = 9400
    # Address of those endpoints (not the API's /metrics): loopback unless a scraper elsewhere needs them.
    metrics_host: str = "127.0.0.1"
    worker_metrics_port: int | None = None
    flower_port: int = 5555
    flower_basic_auth: str = "admin:admin"
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _fail_closed(self) -> Settings:
        if self.env != "development":
            if self.jwt_secret == DEFAULT_JWT_SECRET:
                raise ValueError("CHATAI_JWT_SECRET must be set to a real secret outside development")
            short = [name for name, value in self._own_secrets() if len(value.encode()) < MIN_SECRET_BYTES]
            if short:
                raise ValueError(
                    f"{', '.join(short)} must be at least {MIN_SECRET_BYTES} bytes outside development"
                )
        if self.env == "production" and not self.telegram_token_keys:
            raise ValueError(
                "CHATAI_TELEGRAM_TOKEN_KEYS must be set in production (generate one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
            )
        refuse_exposed_development(self, self.host)
        if self.signup_credit_micros is None:
            self.signup_credit_micros = 0 if self.env == "production" else 5_000_000
        return self

    def _own_secrets(self) -> list[tuple[str, str]]:
        """The secrets this service signs with (keys of other services have their own formats)."""
        return [
            ("CHATAI_JWT_SECRET", self.jwt_secret),
            *((f"CHATAI_JWT_PREVIOUS_KEYS[{kid}]", key) for kid, key in self.jwt_previous_keys.items()),
        ]

    @property
    def use_telegram_webhooks(self) -> bool:
        if self.telegram_webhooks is None:
            return self.public_base_url.startswith("https://")
        return self.telegram_webhooks

    @property
    def broker_url(self) -> str:
        return self.celery_broker_url or self.redis_url

    @property
    def visibility_timeout_seconds(self) -> int:
        # Longer than any task's own deadline, so a running task is never delivered twice.
        return self.reply_time_limit_seconds * 2 + 60


@lru_cache
def get_settings() -> Settings:
    return Settings()
