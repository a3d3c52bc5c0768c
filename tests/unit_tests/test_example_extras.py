"""An example that needs an extra says which one, instead of a bare ModuleNotFoundError."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("script", "extra", "modules"),
    [
        ("agent_quickstart.py", "agents", ["langchain", "langchain.agents"]),
        ("provider_prompt_cache.py", "agents", ["langchain", "langchain.agents"]),
        ("llamaindex_quickstart.py", "llamaindex", ["llama_index", "llama_index.core"]),
    ],
)
def test_example_without_its_extra_names_the_install_line(
    script: str, extra: str, modules: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # as if the extra were not installed
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    # sys.exit(text): the text goes to stderr and the exit status is 1.
    assert f'pip install "costopt-llm[{extra}]"' in str(exit_.value.code)
