"""crmsum: learn from a sales team's own history (amoCRM + Telegram)."""

__version__ = "0.1.0"
