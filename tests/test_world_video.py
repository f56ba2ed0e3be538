"""Video generator: determinism, stable track ids, occlusion, leaving and re-entering the frame."""

import numpy as np
import pytest

from engine.world.textures import second_tone
from engine.world.video import generate_video, parse_video_key
from engine.world.vocab import COLOURS_RGB

VIDEOS = [generate_video(4, i, n_frames=16, image_size=128) for i in range(5)]


def _runs(present):
    s = "".join("x" if p else "." for p in present)
    return s


def test_deterministic():
    again = generate_video(4, 2, n_frames=16, image_size=128)
    assert np.array_equal(again.frames, VIDEOS[2].frames) and np.array_equal(again.labels, VIDEOS[2].labels)
    assert not np.array_equal(generate_video(5, 2, n_frames=16, image_size=128).frames, again.frames)
    assert parse_video_key(again.key) == ("base", 128, 4, 2)
    assert VIDEOS[0].frames.shape == (16, 128, 128, 3)


def test_track_ids_are_stable():
    """A track's pixels keep its colour in every frame, and its centroid moves smoothly."""
    for video in VIDEOS:
        for track in video.tracks:
            base = np.asarray(COLOURS_RGB[track.colour], np.float32)
            centroids = []
            for t in range(video.n_frames):
                m = video.mask(t, track.track_id)
                if not m.any():
                    centroids.append(None)
                    continue
                pix = video.frames[t][m].astype(np.float32)
                d = np.minimum(np.abs(pix - base).max(1), np.abs(pix - second_tone(base)).max(1))
                assert np.median(d) < 25
                ys, xs = np.nonzero(m)
                centroids.append((xs.mean(), ys.mean()))
            for a, b in zip(centroids, centroids[1:]):
                if a is not None and b is not None and not track.wanderer:
                    assert np.hypot(a[0] - b[0], a[1] - b[1]) < 0.12 * 128


def test_objects_leave_and_reenter_with_the_same_id():
    for video in VIDEOS:
        first = _runs(video.presence()[1])
        assert "x" in first and "x." in first and "x" in first[first.index("x.") + 1:], first
        assert video.tracks[0].wanderer


def test_occlusion_gives_disjoint_visible_masks():
    occluded = 0
    for video in VIDEOS:
        for t in range(video.n_frames):
            ids, counts = np.unique(video.labels[t], return_counts=True)
            assert set(ids) <= {0} | {tr.track_id for tr in video.tracks}
            assert all(c >= 30 * (128 / 224) ** 2 for i, c in zip(ids, counts) if i)
        occluded += sum(not p.all() for p in video.presence().values())
    assert occluded >= len(VIDEOS)


def test_masklets_follow_the_phrase():
    video = VIDEOS[0]
    track = video.tracks[0]
    masklets = video.masklets(f"{track.colour} {track.shape}")
    assert track.track_id in masklets
    assert [m is not None for m in masklets[track.track_id]] == list(video.presence()[track.track_id])
    assert all(video.tracks[tid - 1].colour == track.colour for tid in masklets)
    assert video.masklets("crescent") == {}  # a night-only shape: never in a base video


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_frames"):
        generate_video(0, 0, n_frames=0)
    with pytest.raises(ValueError, match="re"):
        generate_video(0, 0, n_frames=4)
