"""``costopt techniques``: seven seed rows, measured figures only from a recorded run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from costopt_core.cli import main
from costopt_core.techniques import (
    MEASURED_PATH,
    TECHNIQUES,
    format_techniques,
    load_measured,
    technique_rows,
)

ROOT = Path(__file__).resolve().parents[3]
DATA_DIR = ROOT.parent / "shared" / "data"
SEED_CLAIMS = {
    "downgrade routing": (0.40, 0.70),
    "semantic cache": (0.30, 0.60),
    "prompt compression": (0.20, 0.40),
    "batch inference": (0.30, 0.50),
    "quantisation INT8/INT4": (0.50, 0.75),
    "distillation": (0.60, 0.80),
    "KV-cache optimisation": (0.20, 0.30),
}


def test_the_seeds_seven_rows_and_claims() -> None:
    assert {t.name: (t.claim_low, t.claim_high) for t in TECHNIQUES} == SEED_CLAIMS
    assert len({t.key for t in TECHNIQUES}) == 7


def test_no_record_means_nothing_measured(tmp_path: Path) -> None:
    rows = technique_rows({})
    assert [r.measured for r in rows] == ["not measured"] * 7
    text = format_techniques({})
    assert text.count("not measured") == 8  # seven rows and the footnote


def test_a_recorded_figure_names_its_data_method_and_script(tmp_path: Path) -> None:
    record = {
        "measured_on": "2030-01-01",
        "techniques": {
            "batch": {
                "saving": 0.5,
                "at": "10 calls",
                "data": "ten prompts",
                "method": "imitation batch API",
                "script": "benchmarks/batch.py",
                "details": {"calls": 10},
            },
            "kv_cache": {"saving": "lots"},  # not a number: not a measurement
        },
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(record))
    rows = {r.technique.key: r for r in technique_rows(load_measured(path))}
    assert rows["batch"].measured == "50.0%" and rows["batch"].within_claim is True
    assert rows["kv_cache"].measured == "not measured"
    text = format_techniques(load_measured(path), verbose=True)
    assert "batch inference: 50.0% (10 calls)" in text
    assert "reproduce: python benchmarks/batch.py --write" in text
    assert '"calls": 10' in text and "2030-01-01" in text


def test_bad_record_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        load_measured(path)
    csv = tmp_path / "prompts.csv"  # the wrong file given to --record: named in the error
    csv.write_text("prompt\nhi\n")
    with pytest.raises(ValueError, match=r"prompts\.csv: not a JSON record of measurements"):
        load_measured(csv)


def test_cli_prints_one_line_per_technique(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["techniques"]) == 0
    out = capsys.readouterr().out
    for name, (low, high) in SEED_CLAIMS.items():
        line = next(line for line in out.splitlines() if line.startswith(name))
        assert f"{low:.0%}-{high:.0%}" in line
    assert main(["techniques", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["technique"] for t in data["techniques"]] == list(SEED_CLAIMS)


def test_shipped_record_covers_routing_and_cache_from_the_benchmark_script() -> None:
    record = load_measured(MEASURED_PATH)
    for key in ("routing", "semantic_cache"):
        entry = record["techniques"][key]
        assert entry["script"] == "benchmarks/techniques.py"
        assert (ROOT / entry["script"]).exists()
        assert 0 <= entry["saving"] <= 1 and entry["data"] and entry["method"]


@pytest.mark.skipif(not (DATA_DIR / "gsm8k_routing.csv").exists(), reason="no shared data")
def test_shipped_routing_figure_is_what_the_script_measures_now() -> None:
    # The routing run takes about a second: re-run it, so a change to the router that
    # moves the figure fails here until the record is refreshed (--write).
    spec = importlib.util.spec_from_file_location(
        "techniques_bench", ROOT / "benchmarks/techniques.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    fresh = bench.measure_routing(DATA_DIR)
    recorded = load_measured(MEASURED_PATH)["techniques"]["routing"]
    assert fresh["saving"] == pytest.approx(recorded["saving"], abs=1e-6)


def test_a_figure_just_below_a_bound_is_not_printed_on_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 0.1996 printed as "20.0%" beside "below the claim" of 20%-40% read as a contradiction.
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"techniques": {"prompt_compression": {"saving": 0.1996}}}))
    assert main(["techniques", "--record", str(path)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "compression" in ln)
    assert "19.96%" in line and "below the claim" in line and "20.0%" not in line


def test_a_named_record_that_is_missing_or_a_directory_is_an_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A typo used to print seven "not measured" rows and exit 0.
    for record in (tmp_path / "missing.json", tmp_path):
        assert main(["techniques", "--record", str(record)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("costopt techniques: error:") and "Traceback" not in err
