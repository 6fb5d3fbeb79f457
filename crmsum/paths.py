"""Where crmsum keeps its files, known without loading the settings: the console script asks a resident
answerer (`crmsum.answer.resident`) before anything heavy is imported, so it cannot wait for pydantic."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = Path("./data")
DATA_DIR_VARIABLE = "CRMSUM_DATA_DIR"


def quick_data_dir() -> Path:
    """The data root as `Settings` resolves it: the environment first, then `.env`, then the default."""
    value = os.environ.get(DATA_DIR_VARIABLE)
    if value is None and Path(".env").is_file():
        from dotenv import dotenv_values

        value = dotenv_values(".env").get(DATA_DIR_VARIABLE)
    return Path(value) if value else DEFAULT_DATA_DIR
