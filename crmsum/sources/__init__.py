"""Data sources: the amoCRM API client and the Telegram Desktop export reader."""
