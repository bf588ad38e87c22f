"""Bytes a batch writes to its manifest, for 500 and 2,000 clips: they must grow linearly.

Runs the real `translate_folder` over folders of tiny files with the translation itself replaced
by one that writes an empty output (the manifest does not care what the clips hold), then counts:

- the log: bytes the process wrote (`wchar` of /proc/self/io, which counts every write call; the
  manifest is all that is written), checked against the size of the log;
- the manifest of earlier versions (one JSON document rewritten and synced after every update),
  computed from the same updates in the same order: it wrote the whole document each time.

Also a rerun, which skips every clip and must write nothing.

    .venv/bin/python benchmarks/bench_manifest.py [--clips 500 2000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vidtrans.batch  # noqa: E402
from vidtrans.batch import MANIFEST_NAME, translate_folder  # noqa: E402
from vidtrans.models.checkpoint import ModelCard, save_checkpoint  # noqa: E402
from tests.media import random_generator  # noqa: E402


def written_bytes() -> int | None:
    """Bytes this process has passed to write calls so far (Linux), else None."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def fake_translate(src, dst, model, options, *, overwrite, progress):
    Path(dst).touch()
    return SimpleNamespace(frames=1, seconds=0.001)


def old_scheme_bytes(updates: list[tuple[str, dict]]) -> int:
    """What the whole-JSON manifest wrote for these updates: after each, the document
    {"format", "version": 1, "clips": {...}} dumped with indent=1. Computed from the size of each
    clip's entry (exact, checked against real dumps below) instead of dumping the whole document
    after each update, which would take minutes."""
    def dump(clips: dict) -> int:
        return len(json.dumps({"format": "vidtrans-batch-manifest", "version": 1, "clips": clips}, indent=1)) + 1

    envelope = dump({"x": 0}) - len('  "x": 0')  # the document around its one entry
    entries: dict[str, int] = {}
    size_of_entries, total = 0, 0
    for step, (clip, record) in enumerate(updates):
        size = dump({clip: record}) - envelope
        size_of_entries += size - entries.get(clip, 0)
        entries[clip] = size
        document = envelope + size_of_entries + len(",\n") * (len(entries) - 1)
        if step < 50:  # later updates of a clip replace its record in place, as they did
            assert document == dump(dict(updates[:step + 1])), step
        total += document
    return total


def measure(work: Path, model: Path, clips: int) -> dict:
    src, out = work / f"in{clips}", work / f"out{clips}"
    src.mkdir()
    for i in range(clips):
        (src / f"clip{i:05d}.mp4").write_bytes(b"tiny")
    before = written_bytes()
    started = time.perf_counter()
    report = translate_folder(src, out, model, devices=["cpu"])
    seconds = time.perf_counter() - started
    after = written_bytes()
    assert [c.status for c in report.clips] == ["done"] * clips, report.failed[:1]
    log = (out / MANIFEST_NAME).read_bytes()
    updates = [(record.pop("clip"), record) for record in map(json.loads, log.splitlines()[1:])]
    rerun_before = written_bytes()
    rerun = translate_folder(src, out, model, devices=["cpu"])
    rerun_after = written_bytes()
    assert [c.status for c in rerun.clips] == ["skipped"] * clips
    return {"clips": clips, "updates": len(updates), "log": len(log),
            "written": None if before is None else after - before, "seconds": seconds,
            "rerun": None if rerun_before is None else rerun_after - rerun_before, "old": old_scheme_bytes(updates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, nargs=2, default=[500, 2000])
    args = parser.parse_args()

    vidtrans.batch.translate_video = fake_translate
    work = Path(tempfile.mkdtemp(prefix="bench_manifest_"))
    try:
        net = random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=0)
        save_checkpoint(work / "model", net, ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance",
                                                       native_size=(64, 64)))
        rows = [measure(work, work / "model", n) for n in args.clips]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'clips':>6}{'updates':>9}{'log bytes':>12}{'written':>12}{'per clip':>10}{'rerun':>7}{'seconds':>9}"
          f"{'old scheme':>16}")
    for r in rows:
        written = r["written"] if r["written"] is not None else r["log"]
        print(f"{r['clips']:>6}{r['updates']:>9}{r['log']:>12,}{written:>12,}{written / r['clips']:>10.0f}"
              f"{r['rerun'] if r['rerun'] is not None else '-':>7}{r['seconds']:>9.1f}{r['old']:>16,}")
    small, large = rows
    key = "written" if small["written"] is not None else "log"
    print(f"{large['clips']} / {small['clips']} clips = {large['clips'] / small['clips']:.1f}x: "
          f"log bytes {large[key] / small[key]:.2f}x, old scheme {large['old'] / small['old']:.2f}x")


if __name__ == "__main__":
    main()
