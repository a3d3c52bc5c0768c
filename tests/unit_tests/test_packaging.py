"""Packaging: frameworks beyond LangChain are extras, each package has a version, and
a missing extra is an ImportError that names the ``pip install`` line."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from costopt_core.exports import DISTRIBUTION, lazy_exports

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("costopt_core", "langchain_costopt", "llamaindex_costopt")


def _project() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)["project"]


def test_llamaindex_is_an_extra_and_dev_installs_it() -> None:
    project = _project()
    assert project["name"] == DISTRIBUTION != "costopt"
    core = " ".join(project["dependencies"])
    assert "llama-index" not in core and "langchain-core" in core and "numpy" in core
    extras = project["optional-dependencies"]
    assert extras["llamaindex"] == ["llama-index-core>=0.14,<0.15"]
    assert [d.split(">")[0] for d in extras["agents"]] == ["langchain"]
    assert any(
        d.startswith(f"{DISTRIBUTION}[") and "llamaindex" in d and "agents" in d
        for d in extras["dev"]
    ), extras["dev"]


@pytest.mark.parametrize("package", PACKAGES)
def test_version_comes_from_the_distribution(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__version__ == importlib.metadata.version(DISTRIBUTION)
    assert "__version__" in dir(module)


# Runs in a fresh interpreter where `llama_index` cannot be found, as after
# `pip install costopt-llm` without the extra; nothing is uninstalled.
_WITHOUT_LLAMA_INDEX = textwrap.dedent(
    """
    import importlib, sys

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name == "llama_index" or name.startswith("llama_index."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())

    # The engine and the LangChain face work without LlamaIndex.
    import costopt_core, langchain_costopt
    from langchain_costopt import HashingEmbeddings, RouterChatModel, SemanticLLMCache
    assert costopt_core.ComplexityClassifier().classify("翻译") == "simple"

    for attempt in (
        "import llamaindex_costopt",
        "from llamaindex_costopt import RouterLLM",
        "import llamaindex_costopt.router",
    ):
        try:
            exec(attempt)
        except ImportError as exc:
            print(attempt, "->", exc)
        else:
            raise SystemExit(f"{attempt!r} worked without llama_index")
    assert not any(m == "llama_index" or m.startswith("llama_index.") for m in sys.modules)
    """
)


def test_llamaindex_face_without_the_extra_says_how_to_install_it() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_LLAMA_INDEX],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    for line in lines:
        assert 'pip install "costopt-llm[llamaindex]"' in line, line


def test_lazy_exports_load_on_first_use_and_list_their_names() -> None:
    getattr_, dir_, names = lazy_exports(
        "costopt_core", {"json": ("dumps",), "costopt_core.tokens": ("estimate_tokens",)}
    )
    assert names == ["dumps", "estimate_tokens"]
    assert getattr_("dumps")([1]) == "[1]"
    assert {"dumps", "estimate_tokens", "__version__", "ComplexityClassifier"} <= set(dir_())
    with pytest.raises(AttributeError, match="module 'costopt_core' has no attribute 'nope'"):
        getattr_("nope")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_name_in_all_resolves(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))


def test_version_falls_back_when_the_distribution_is_not_installed(monkeypatch) -> None:
    from costopt_core import exports

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    exports.distribution_version.cache_clear()
    try:
        assert exports.distribution_version() == exports.UNKNOWN_VERSION == "0+unknown"
    finally:
        exports.distribution_version.cache_clear()
