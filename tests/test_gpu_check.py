"""benchmarks/gpu_check.py --dry: every section runs on the CPU and lands in the JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ["environment", "cuda_tests", "precision", "model_alone", "run", "in_flight", "encode", "batch", "live", "train"]
# Figures that are rates or durations: a measured one is above zero.
POSITIVE = ("fps", "_ms", "seconds", "it_per_s", "cores")


def positive_figures(value, key=""):
    """(key, number) for every rate or duration anywhere in the report."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from positive_figures(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from positive_figures(v, key)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and key.endswith(POSITIVE):
        yield key, value


def test_dry_run_measures_every_section(tmp_path):
    result = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry"], cwd=ROOT, capture_output=True,
                            text=True, env={**os.environ, "OUT": str(tmp_path)}, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    sections = report["sections"]
    assert list(sections) == SECTIONS
    for name, entry in sections.items():
        # The CUDA tests may fail without CUDA; every other section must measure on the CPU.
        assert entry["status"] == "ok" or (name == "cuda_tests" and entry["status"] == "error" and entry["error"]), \
            (name, entry)
    assert report["meta"]["dry"] is True
    figures = list(positive_figures(sections))
    assert len(figures) > 20 and all(value > 0 for _, value in figures), figures
    rows = sections["run"]["rows"]
    assert {(r["model"], r["size"]) for r in rows} == {(m, s) for m in ("pose2person", "unet_256 ngf 8") for s in (256, 512)}
    assert all(r["run_fps"] > 0 and r["naive_fps"] > 0 and r["floor_fps"] > 0 for r in rows)
    flights = sections["in_flight"]["rows"]
    assert {(r["model"], r["size"]) for r in flights} == {(r["model"], r["size"]) for r in rows}
    assert all(r["in_flight_default"] == 1 and r["fps_in_flight_1"] > 0 for r in flights)  # a CPU: one per translator
    assert {r["size"] for r in sections["encode"]["rows"]} == {256, 512}
    assert all(r["segments"] >= 2 and r["floor_fps_segments"] > 0 for r in sections["encode"]["rows"])
    assert {r["mode"] for r in sections["model_alone"]["rows"]} == {"eager", "compile", "cuda_graphs"}
    assert all(r["psnr_db"] > 30 for r in sections["precision"]["rows"])
    assert sections["live"]["latency_p95_ms"] >= sections["live"]["latency_p50_ms"] > 0
    assert all(f"== {name}: " in result.stdout for name in SECTIONS)  # a table per section
