"""Packaging and the public Python API: what a user gets from the README and from `pip install .`."""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

from tests.media import dancer_clip, decode_all, make_clip

REPO = Path(__file__).resolve().parents[1]


def readme_python_api() -> str:
    """The python snippet of the README's "## Python API" section."""
    section = REPO.joinpath("README.md").read_text().split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_runs_as_written(tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "in.mp4", frames=6, audio=False)
    snippet = readme_python_api()
    # Only the inputs change: our clip, a temporary output, the CPU, and a tiny model for every
    # model the snippet loads (the default pose model's detection would only slow this test down).
    replacements = {'"in.mp4"': repr(str(clip.path)), '"out.mp4"': repr(str(tmp_path / "out.mp4")),
                    '"out2.mp4"': repr(str(tmp_path / "out2.mp4")), '"out3.mp4"': repr(str(tmp_path / "out3.mp4")),
                    '"auto"': '"cpu"'}
    for old, new in replacements.items():
        assert old in snippet, f"the README's Python API no longer mentions {old}; update this test"
        snippet = snippet.replace(old, new)
    snippet, models = re.subn(r'load_model\("[^"]*"', f"load_model({str(rgb_model_dir)!r}", snippet)
    assert models, "the README's Python API no longer loads a model; update this test"
    assert '"pose2person")' in snippet, "the README's Python API no longer passes a model name; update this test"
    snippet = snippet.replace('"pose2person")', f"{str(rgb_model_dir)!r})")
    namespace = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert namespace["frames_in"].shape == np.stack(clip.images).shape  # the clip's frames, read as the README reads them
    assert namespace["frames_out"].shape == namespace["frames_in"].shape and namespace["frames_out"].dtype == np.uint8
    for out in ("out.mp4", "out2.mp4", "out3.mp4"):
        images, _ = decode_all(tmp_path / out)
        assert len(images) == 6


def test_import_is_cheap_and_exports_the_api():
    probe = ("import sys, vidtrans; heavy = [m for m in ('torch', 'cv2', 'av') if m in sys.modules]; "
             "api = [callable(getattr(vidtrans, n)) for n in ('load_model', 'translate_video', 'render_pose_video')]; "
             "print(heavy, all(api))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "True"]


def test_opencv_is_held_below_5():
    """OpenCV 5 drops APIs vidtrans uses. Both packages that install the cv2 folder (ours, and
    mediapipe's opencv-contrib-python) must stay on 4.x, or one would overwrite the other."""
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    opencv = {r.name: r for r in map(Requirement, dependencies) if r.name.startswith("opencv")}
    assert set(opencv) == {"opencv-python", "opencv-contrib-python"}
    for requirement in opencv.values():
        assert not requirement.specifier.contains("5.0.0") and requirement.specifier.contains("4.11.0.86")


@pytest.mark.install
def test_wheel_installs_a_working_tool_with_its_default_model(tmp_path):
    """`pip install .` (not editable): the wheel carries the default model, and `vidtrans run`
    works from any folder. Builds offline with the setuptools of this environment."""
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the repository
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "vidtrans", source / "vidtrans", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "checkpoints", source / "checkpoints", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIDTRANS_MODELS", "PYTHONHOME")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", XDG_CACHE_HOME=str(tmp_path / "cache"))
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(tmp_path / "dist"),
                    str(source)], check=True, capture_output=True, timeout=120, env=env)
    wheel = next((tmp_path / "dist").glob("vidtrans-*.whl"))

    # The package list in pyproject.toml is spelled out: every module must be in the wheel. Of
    # checkpoints/, only the shipped model is (users train their own models into it too).
    packed = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "vidtrans").rglob("*.py")}
    assert modules <= packed, f"missing from the wheel: {sorted(modules - packed)}"
    assert {n for n in packed if n.startswith("vidtrans/checkpoints/")} == {
        f"vidtrans/checkpoints/pose2person/{n}" for n in ("card.json", "model.safetensors", "background.png")}

    # A fresh environment that borrows this one's dependencies (no network), but not its
    # editable vidtrans: a plain path in a .pth file does not run that folder's .pth hooks.
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True, timeout=60)
    python = fresh / "bin" / "python"
    fresh_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                check=True, capture_output=True, text=True, env=env).stdout.strip()
    Path(fresh_site, "borrowed_dependencies.pth").write_text(
        "\n".join(dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])) + "\n")
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=120, env=env)

    work = tmp_path / "work"  # not the repository: nothing may come from the source tree
    work.mkdir()
    where = subprocess.run([python, "-c", "import vidtrans; print(vidtrans.__file__)"], cwd=work, env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(fresh), where
    clip = dancer_clip(work / "dancer.mp4", frames=10, size=(160, 120))
    run = subprocess.run([fresh / "bin" / "vidtrans", "run", "dancer.mp4", "-o", "out.mp4", "--device", "cpu", "--json"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["model"] == "pose2person" and summary["frames"] == 10 and summary["frames_without_person"] == 0
    images, _ = decode_all(work / "out.mp4")
    assert len(images) == len(clip.images) == 10
