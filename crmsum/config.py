"""Settings from the environment (and `.env`): the only place that reads os.environ."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRMSUM_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")
    lake_url: str | None = None  # e.g. s3://bucket/crmsum/lake; default DATA_DIR/lake
    s3_endpoint_url: str | None = None
    timezone: str = "Europe/Moscow"

    amocrm_base_url: str | None = None
    amocrm_token: SecretStr | None = None
    amocrm_client_id: str | None = None
    amocrm_client_secret: SecretStr | None = None
    amocrm_refresh_token: SecretStr | None = None
    amocrm_redirect_uri: str | None = None
    amocrm_rps: float = 7.0

    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    telegram_allowed_chats: str = ""
    telegram_digest_chats: str = ""  # "chat_id:manager" pairs for personal digests
    telegram_user_rate: int = 20  # questions per user per hour
    telegram_lead_chat: int | None = None  # the team lead's chat: monthly ratings summary

    llm: str | None = None  # "offline" | "llm"
    llm_model: str = "gpt-4o-mini"
    llm_timeout: float = 60.0
    llm_context_tokens: int = 6000
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")

    embeddings: str = "offline"  # "offline" (navec SIF, shipped) | "openai" (any compatible /v1/embeddings)
    embeddings_model: str | None = None  # openai backend; default text-embedding-3-small
    embeddings_base_url: str | None = None  # default OPENAI_BASE_URL
    embeddings_refit_growth: float = 0.5  # offline: refit when the corpus grew by this share since the fit
    embeddings_approx_above: int = 250_000  # vectors above which search uses the approximate index

    dask_address: str | None = None  # "local" or a scheduler address enables the Dask runner

    @property
    def lake_dir(self) -> str:
        return self.lake_url or str(Path(self.data_dir) / "lake")

    @property
    def vault_dir(self) -> Path:
        return Path(self.data_dir) / "vault"

    @property
    def outbox_dir(self) -> Path:
        return Path(self.data_dir) / "outbox"

    @property
    def state_dir(self) -> Path:
        return Path(self.data_dir) / "state"

    @property
    def inbox_dir(self) -> Path:
        return Path(self.data_dir) / "inbox"

    @property
    def allowed_chats(self) -> set[int]:
        return {int(c) for c in self.telegram_allowed_chats.replace(";", ",").split(",") if c.strip()}

    @property
    def use_llm(self) -> bool:
        if self.llm:
            return self.llm.lower() == "llm"
        return self.openai_api_key is not None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests and the demo change the environment)."""
    get_settings.cache_clear()
