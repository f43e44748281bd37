from benchmarks.coders import CoderRow, summary
from benchmarks.viewer import VIEWER_CODECS, compared_rows


def _score(ciede2000: float) -> dict:
    return {
        "bytes": 100,
        "jumps": 1,
        "largest_jump": 3.0,
        "ciede2000": ciede2000,
        "blocking": 0.1,
        "ciede2000_inside": ciede2000,
        "edge_direction": 5.0,
        "edge_error": 10.0,
    }


def _row(image: str, ours: float, theirs: float | None) -> CoderRow:
    viewer = {
        "ours": _score(ours),
        **{name: None if theirs is None else _score(theirs) for name in VIEWER_CODECS},
    }
    return CoderRow(image, 0.9, 100, "network", 100, {"network": 100}, True, 1.0, viewer)


def test_compared_rows_keep_the_images_every_classic_codec_reached() -> None:
    reached, missed = _row("a", 4.0, 5.0).viewer, _row("b", 9.0, None).viewer
    partly = {**reached, VIEWER_CODECS[0]: None}
    assert compared_rows([reached, missed, partly]) == [reached]


def test_the_summary_compares_ours_and_theirs_on_the_same_images() -> None:
    # WebP and JPEG cannot go as small as ours on "b": ours there must not enter the means
    table = summary([_row("a", 4.0, 5.0), _row("b", 9.0, None)], "Test")
    last = table.splitlines()[-1].split(" | ")
    assert last[8] == "1"  # images compared
    assert last[10] == "4.00 / 5.00 / 5.00"  # CIEDE2000: ours / JPEG / WebP on image a alone
    assert last[12] == "1 / 1 / 1"  # jumps
