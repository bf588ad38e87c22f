"""QA pass 24, `batch` discovery: folders reached under several names (links that branch), each
searched once, under a name that does not depend on the order the file system lists them in."""

import logging

from vidtrans.batch import find_clips


def test_links_that_branch_do_not_multiply_the_search(tmp_path, caplog):
    """Each level holding two links to the next made 2**depth names: at depth 40, discovery never
    ended (at 12, here, 8191 folders searched). Each folder is now searched once."""
    levels = [tmp_path / f"level{i}" for i in range(13)]
    for i, level in enumerate(levels):
        level.mkdir()
        (level / f"clip{i}.mp4").write_bytes(b"")
        if i:
            for name in ("a", "b"):
                (levels[i - 1] / name).symlink_to(level, target_is_directory=True)
    with caplog.at_level(logging.WARNING):
        clips = find_clips(levels[0])
    assert len(clips) == 13  # each clip once, under the a-side names (first in name order)
    deepest = max(clips, key=lambda p: len(p.parts))
    assert deepest.relative_to(levels[0]).parts == ("a",) * 12 + ("clip12.mp4",)
    assert sum("already searched" in r.getMessage() for r in caplog.records) == 12


def test_a_folder_linked_twice_is_searched_under_its_own_name(tmp_path, caplog):
    """A link that is a shortcut to a folder of the tree (latest -> 2024/shoot) took the folder's
    clips under its name: repointing it between runs renamed the outputs."""
    root = tmp_path / "in"
    (root / "2024" / "shoot").mkdir(parents=True)
    (root / "2024" / "shoot" / "x.mp4").write_bytes(b"")
    (root / "latest").symlink_to(root / "2024" / "shoot", target_is_directory=True)
    (root / "b-link").symlink_to(root / "2024" / "shoot", target_is_directory=True)
    with caplog.at_level(logging.WARNING):
        assert [p.relative_to(root).as_posix() for p in find_clips(root)] == ["2024/shoot/x.mp4"]
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 2 and all("is a link to" in line and line.endswith("under that name") for line in told)


def test_a_folder_only_a_link_reaches_is_searched_under_the_first_link(tmp_path):
    outside = tmp_path / "footage"
    outside.mkdir()
    (outside / "y.mp4").write_bytes(b"")
    root = tmp_path / "in"
    root.mkdir()
    for name in ("z-link", "b-link"):
        (root / name).symlink_to(outside, target_is_directory=True)
    assert [p.relative_to(root).as_posix() for p in find_clips(root)] == ["b-link/y.mp4"]
