"""Chat providers, one shared instance per (provider, endpoint) per process."""

from __future__ import annotations

from typing import Protocol

from services.providers.base import ChatProvider, ProviderError, auth_failed

__all__ = ["ChatProvider", "ProviderError", "close_providers", "get_provider"]


class ProviderSettings(Protocol):
    llm_base_url: str | None
    llm_api_key: str | None
    llm_connect_timeout_seconds: float
    llm_timeout_seconds: float
    offline_token_delay_ms: float


_providers: dict[tuple[str, str | None], ChatProvider] = {}


def get_provider(name: str, settings: ProviderSettings) -> ChatProvider:
    key = (name, settings.llm_base_url if name == "openai" else None)
    provider = _providers.get(key)
    if provider is None:
        provider = _providers[key] = _create(name, settings)
    return provider


def _create(name: str, settings: ProviderSettings) -> ChatProvider:
    if name == "offline":
        from services.providers.offline import OfflineProvider

        return OfflineProvider(token_delay_ms=settings.offline_token_delay_ms)
    if name == "openai":
        # api.openai.com (the SDK default, no base URL) always needs a key; a self-hosted endpoint may not.
        if settings.llm_base_url is None and not settings.llm_api_key:
            raise auth_failed("No API key is configured for the OpenAI API (CHATAI_LLM_API_KEY).")
        from services.providers.openai_compat import OpenAICompatibleProvider

        return OpenAICompatibleProvider(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key,
            connect_timeout=settings.llm_connect_timeout_seconds,
            read_timeout=settings.llm_timeout_seconds,
        )
    raise ProviderError("llm_not_configured", f"Unknown LLM provider {name!r}.", retryable=False)


async def close_providers() -> None:
    """Close every cached provider (at worker shutdown, and between tests)."""
    providers = list(_providers.values())
    _providers.clear()
    for provider in providers:
        await provider.aclose()
