"""Every script in examples/ runs as-is, offline, and prints what a user looks for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# What each example must print (a line a user would look for). An example not listed
# here must still run and exit 0.
EXPECTED: dict[str, tuple[str, ...]] = {
    "quickstart.py": ("routing savings against baseline model",),
    "compression.py": ("input tokens cut by", "compression 0.01"),
    "batch_discount.py": ("the deferred batch cost 50% of the direct calls", "batch 0.000164 USD"),
    "provider_prompt_cache.py": ("provider cache 0.0", "cut the bill by"),
    "local_tier.py": (" local ", "(local: $1.20/h, 40 tok/s out, 400 tok/s in)", "break-even:"),
    "distillation_export.py": (
        "strong-tier answers written to",
        "[EMAIL]",
        "distillation: moving 50%",
    ),
}


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_runs_offline(script: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        # No key and no proxy: a script that tried the network would fail here.
        "OPENAI_API_KEY": "",
        "ANTHROPIC_API_KEY": "",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for expected in EXPECTED.get(script, ()):
        assert expected in result.stdout, f"{script} did not print {expected!r}"
