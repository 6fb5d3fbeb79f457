"""Settings from the environment (and `.env`): the only place that reads os.environ (besides
`paths.quick_data_dir`, the console script's way to the data root before pydantic loads)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from crmsum.paths import DEFAULT_DATA_DIR


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRMSUM_", env_file=".env", extra="ignore")

    data_dir: Path = Field(DEFAULT_DATA_DIR, description="data root: lake/, vault/, outbox/, state/, inbox/, logs/ below it")
    lake_url: str | None = Field(None, description="keep the lake on S3-compatible storage, e.g. s3://bucket/crmsum/lake (default DATA_DIR/lake)")
    s3_endpoint_url: str | None = Field(None, description="endpoint of the S3-compatible storage (MinIO, Yandex Object Storage...)")
    timezone: str = Field("Europe/Moscow", description="the account's time zone; lake timestamps are local time")

    amocrm_base_url: str | None = Field(None, description="e.g. https://yourco.amocrm.ru (or the emulator's http://127.0.0.1:PORT)")
    amocrm_token: SecretStr | None = Field(None, description="long-lived access token (or the four OAuth 2 settings below)")
    amocrm_client_id: str | None = Field(None, description="OAuth 2 integration id (the rotated token pair is kept in DATA_DIR/state/)")
    amocrm_client_secret: SecretStr | None = Field(None, description="OAuth 2 integration secret")
    amocrm_refresh_token: SecretStr | None = Field(None, description="OAuth 2 refresh token from the authorization (used once; rotated pairs follow)")
    amocrm_redirect_uri: str | None = Field(None, description="OAuth 2 redirect URI registered with the integration")
    amocrm_rps: float = Field(7.0, description="client-side request rate, requests per second (amoCRM allows 7)")

    telegram_token: SecretStr | None = Field(None, description="bot token from @BotFather; unset means dry run into DATA_DIR/outbox/")
    telegram_api_url: str = Field("https://api.telegram.org", description="Bot API base (tests point it at the emulator)")
    telegram_allowed_chats: str = Field("", description="comma-separated chat ids allowed to talk to the bot and receive digests")
    telegram_digest_chats: str = Field("", description='what a listed chat gets: "chat_id:team" or "chat_id:<manager>" pairs, comma-separated')
    telegram_user_rate: int = Field(20, description="questions per user per hour")
    telegram_workers: int = Field(8, description="bot threads for incoming updates (precomputed answers are served on them)")
    telegram_live_workers: int = Field(4, description="live answers computed at once; more wait in line without holding up quick answers")
    telegram_lead_chat: int | None = Field(None, description="the team lead's chat (an allowed chat): monthly ratings summary")
    brief_stages: str = Field("", description="stage names (comma-separated) whose entry sends the deal's manager a brief; default: the stage before won in each pipeline")
    display_resolve: str = Field("names", description="what readers see resolved from pseudonyms: names only by default; opt in with e.g. names,phones,emails,documents (also handles, links)")

    llm: str | None = Field(None, description="offline or llm, to force a backend (default: llm when OPENAI_API_KEY is set)")
    llm_model: str = Field("gpt-4o-mini", description="model name for the LLM backend")
    llm_timeout: float = Field(60.0, description="seconds one LLM request may take before it is retried")
    llm_context_tokens: int = Field(6000, description="prompt token budget per LLM call; longer inputs are map-reduced")
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY",
                                             description="the openai client's key; with a key set the LLM backend is used")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL",
                                        description="any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp)")

    embeddings: str = Field("offline", description='"offline" (navec SIF vectors shipped with natasha) or "openai" (any OpenAI-compatible /v1/embeddings)')
    embeddings_model: str | None = Field(None, description="model of the openai embeddings (default text-embedding-3-small)")
    embeddings_base_url: str | None = Field(None, description="endpoint of the openai embeddings (default OPENAI_BASE_URL)")
    embeddings_refit_growth: float = Field(0.5, description="offline embeddings are refitted when the corpus grew by this share since the fit")
    embeddings_approx_above: int = Field(1_000_000, description="vectors above which search uses the approximate (HNSW) index")

    dask_address: str | None = Field(None, description='"local" or a Dask scheduler address: anonymization and precompute fan out on Dask')

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


def env_name(name: str) -> str:
    """The environment variable of a `Settings` field."""
    alias = Settings.model_fields[name].validation_alias
    return alias if isinstance(alias, str) else f"CRMSUM_{name.upper()}"


def env_example() -> str:
    """`.env.example`: every setting, its meaning and its default (generated, so it never drifts)."""
    lines = ["# crmsum configuration: copy to .env (or export the variables). Generated by `python -m crmsum.config`.", ""]
    for name, f in Settings.model_fields.items():
        default = "" if f.default is None else str(f.default)
        lines += [f"# {f.description}", f"{'' if default else '# '}{env_name(name)}={default}", ""]
    return "\n".join(lines)


def reset_settings() -> None:
    """Forget cached settings (tests and the demo change the environment)."""
    get_settings.cache_clear()


if __name__ == "__main__":
    print(env_example(), end="")
