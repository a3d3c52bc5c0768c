"""A tool and an answer schema the structured-output agent tests share."""

from __future__ import annotations

from langchain_core.tools import tool
from pydantic import BaseModel


class Weather(BaseModel):
    city: str
    summary: str


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: sunny, 21C"


__all__ = ["Weather", "get_weather"]
