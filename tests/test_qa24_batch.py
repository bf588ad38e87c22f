"""QA pass 24, `batch` discovery: folders reached under several names (links that branch), each
searched once, under a name that does not depend on the order the file system lists them in."""

import logging

from vidtrans.batch import find_clips


def test_links_that_branch_do_not_multiply_the_search(tmp_path, caplog):
    """Each level holding two links to the next made 2**depth names: at depth 40, discovery never
    ended. Each folder is now searched once."""
    levels = [tmp_path / f"level{i}" for i in range(41)]
    for i, level in enumerate(levels):
        level.mkdir()
        (level / f"clip{i}.mp4").write_bytes(b"")
        if i:
            for name in ("a", "b"):
                (levels[i - 1] / name).symlink_to(level, target_is_directory=True)
    with caplog.at_level(logging.WARNING):
        clips = find_clips(levels[0])
    assert len(clips) == 41  # each clip once, under the a-side names (first in name order)
    deepest = max(clips, key=lambda p: len(p.parts))
    assert deepest.relative_to(levels[0]).parts == ("a",) * 40 + ("clip40.mp4",)
    assert sum("already searched" in r.getMessage() for r in caplog.records) == 40


def test_a_folder_linked_twice_is_searched_under_its_shallowest_first_name(tmp_path, caplog):
    root = tmp_path / "in"
    (root / "deep" / "shots").mkdir(parents=True)
    (root / "deep" / "shots" / "x.mp4").write_bytes(b"")
    (root / "z-link").symlink_to(root / "deep" / "shots", target_is_directory=True)
    (root / "b-link").symlink_to(root / "deep" / "shots", target_is_directory=True)
    with caplog.at_level(logging.WARNING):
        assert [p.relative_to(root).as_posix() for p in find_clips(root)] == ["b-link/x.mp4"]
    assert any("z-link leads to" in r.getMessage() and "b-link" in r.getMessage() for r in caplog.records)
