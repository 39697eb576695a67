"""Video probing and timestamp-exact frame sampling (spec/mmaudio.md §5.1).

Expected frame indices are computed here from the frame times alone with the spec's rule
("first frame whose timestamp is >= k/f"), independently of the implementation.
"""

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from foley_core.errors import MediaError
from foley_core.media import frame_sampling
from foley_core.media.synthetic import (
    code_block_centers,
    flash_frame,
    flash_frames_array,
    make_tone,
    read_index_code,
    write_flash_video,
    write_tone_wav,
    write_vfr_flash_video,
)
from foley_core.media.video import (
    MAX_DURATION_S,
    MAX_FRAME_SIDE,
    probe_video,
    sample_video,
)

NTSC = Fraction(30000, 1001)
N_FRAMES = 96
SIZE = (160, 120)  # width, height
# 8 sits just after the target 2/8 s, where the nearest frame would be 7 (see the guard test).
FLASHES = (8, 31, 50, 83)
VFR_TIMES = [0, 0.04, 0.05, 0.12, 0.3, 0.31, 0.32, 0.7, 1.0]
VFR_LAST = 0.1


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    return {
        "cfr": write_flash_video(folder / "cfr.mp4", NTSC, N_FRAMES, FLASHES, SIZE,
                                 with_audio=16000, gop=12),
        "vfr": write_vfr_flash_video(folder / "vfr.mp4", VFR_TIMES, VFR_LAST, (3,), SIZE),
        "rotated": write_flash_video(folder / "rot.mp4", 25, 8, (), SIZE, rotation=90),
        "folder": folder,
    }


@pytest.fixture(scope="module")
def cfr_sampled(media):
    return sample_video(media["cfr"])


def first_at_or_after(times, target):
    """The spec's rule; past the last frame's start, the last frame (still on screen)."""
    for index, t in enumerate(times):
        if t >= target:
            return index
    return len(times) - 1


def expected_indices(times, fps, start, duration):
    count = int(fps * duration)
    return [first_at_or_after(times, start + Fraction(k, fps)) for k in range(count)]


def clip_centers(width, height):
    """Code block centres after the 384×384 squash."""
    return [((x + 0.5) * 384 / width - 0.5, (y + 0.5) * 384 / height - 0.5)
            for x, y in code_block_centers(width, height)]


def sync_centers(width, height):
    """Code block centres after short side → 224 (v2 rounding) and a 224 centre crop."""
    scale = 224 / min(width, height)
    new_w, new_h = int(224 * width / height), 224  # landscape test videos
    left, top = int(round((new_w - 224) / 2)), int(round((new_h - 224) / 2))
    return [((x + 0.5) * scale - 0.5 - left, (y + 0.5) * scale - 0.5 - top)
            for x, y in code_block_centers(width, height)]


def decoded_indices(stack, centers):
    """Source frame index of each output frame ("flash" for a white frame)."""
    out = []
    for frame in stack:
        code = read_index_code(frame.permute(1, 2, 0).numpy(), centers)
        out.append("flash" if code is None else code)
    return out


def as_decoded(indices, flashes):
    return ["flash" if i in flashes else i for i in indices]


def flash_positions(stack):
    return [k for k, frame in enumerate(stack) if frame.float().mean() > 200]


# ---------------------------------------------------------------------------------- probing

def test_probe_reports_exact_cfr_facts(media):
    info = probe_video(media["cfr"])
    assert info.frame_rate == NTSC
    assert info.duration == Fraction(N_FRAMES * 1001, 30000)  # end of the last frame
    assert info.duration_s == pytest.approx(3.2032)
    assert (info.width, info.height, info.rotation) == (160, 120, 0)
    assert info.codec == "h264"
    assert info.has_audio and info.audio_sample_rate == 16000
    assert info.first_pts * info.time_base == 0


def test_probe_vfr_duration_is_last_frame_end(media):
    info = probe_video(media["vfr"])
    assert info.duration == Fraction(11, 10)
    assert not info.has_audio and info.audio_sample_rate is None


def test_probe_rotation_swaps_display_size(media):
    info = probe_video(media["rotated"])
    assert info.rotation == 90
    assert (info.width, info.height) == (120, 160)


# ---------------------------------------------------------------------- the timestamp rule

def test_cfr_stacks_follow_first_frame_at_or_after_rule(cfr_sampled):
    times = [Fraction(i * 1001, 30000) for i in range(N_FRAMES)]
    duration = Fraction(N_FRAMES * 1001, 30000)
    s = cfr_sampled
    assert s.duration == duration and s.start_s == 0.0
    assert s.clip_frames.shape == (25, 3, 384, 384) and s.clip_frames.dtype == torch.uint8
    assert s.sync_frames.shape == (80, 3, 224, 224) and s.sync_frames.dtype == torch.uint8
    assert s.stream_rates == {"clip": 8, "sync": 25}

    clip_expected = expected_indices(times, 8, 0, duration)
    sync_expected = expected_indices(times, 25, 0, duration)
    # flashes land exactly where the rule puts them (and the test data does contain some)
    clip_flashes = [k for k, i in enumerate(clip_expected) if i in FLASHES]
    sync_flashes = [k for k, i in enumerate(sync_expected) if i in FLASHES]
    assert clip_flashes and sync_flashes
    assert flash_positions(s.clip_frames) == clip_flashes
    assert flash_positions(s.sync_frames) == sync_flashes
    # every other frame is the predicted source frame, too
    assert decoded_indices(s.clip_frames, clip_centers(*SIZE)) == as_decoded(
        clip_expected, FLASHES)
    assert decoded_indices(s.sync_frames, sync_centers(*SIZE)) == as_decoded(
        sync_expected, FLASHES)


def test_rule_differs_from_nearest_frame_on_this_data():
    """Guards the test data: a "nearest frame" sampler would pick other frames here."""
    times = [Fraction(i * 1001, 30000) for i in range(N_FRAMES)]
    nearest = [min(range(N_FRAMES), key=lambda i: abs(times[i] - Fraction(k, 8)))
               for k in range(25)]
    assert nearest != expected_indices(times, 8, 0, Fraction(N_FRAMES * 1001, 30000))
    assert 8 not in nearest  # flash 8 is only reached by the >= rule (k = 2)


def test_vfr_uses_real_timestamps_and_repeats_last_frame(media):
    times = [Fraction(repr(t)) for t in VFR_TIMES]
    s = sample_video(media["vfr"])
    assert s.duration == Fraction(11, 10)
    clip_expected = expected_indices(times, 8, 0, s.duration)
    sync_expected = expected_indices(times, 25, 0, s.duration)
    assert len(s.clip_frames) == 8 and len(s.sync_frames) == 27
    assert sync_expected[-1] == 8 and sync_expected.count(8) > 1  # past the last start
    assert decoded_indices(s.clip_frames, clip_centers(*SIZE)) == as_decoded(
        clip_expected, (3,))
    assert decoded_indices(s.sync_frames, sync_centers(*SIZE)) == as_decoded(
        sync_expected, (3,))


@pytest.mark.parametrize("start, max_duration, duration", [
    (1.0, 1.5, Fraction(3, 2)),  # seeks (keyframe every 12 frames)
    (2.5, None, Fraction(N_FRAMES * 1001, 30000) - Fraction(5, 2)),  # rest of the video
    (0.0, 0.8, Fraction(4, 5)),
])
def test_start_and_max_duration(media, start, max_duration, duration):
    times = [Fraction(i * 1001, 30000) for i in range(N_FRAMES)]
    s = sample_video(media["cfr"], start_s=start, max_duration_s=max_duration)
    begin = Fraction(repr(start))
    assert s.duration == duration and s.start_s == start
    clip_expected = expected_indices(times, 8, begin, duration)
    sync_expected = expected_indices(times, 25, begin, duration)
    assert len(s.clip_frames) == int(8 * duration) and len(s.sync_frames) == int(25 * duration)
    assert decoded_indices(s.clip_frames, clip_centers(*SIZE)) == as_decoded(
        clip_expected, FLASHES)
    assert decoded_indices(s.sync_frames, sync_centers(*SIZE)) == as_decoded(
        sync_expected, FLASHES)


def test_decoding_stops_after_the_segment(media, monkeypatch):
    seen = []
    original = frame_sampling._decoded_frames

    def counting(info, start):
        for item in original(info, start):
            seen.append(item[0])
            yield item

    monkeypatch.setattr(frame_sampling, "_decoded_frames", counting)
    sample_video(media["cfr"], max_duration_s=0.5)
    assert max(seen) < Fraction(1, 2) + Fraction(2 * 1001, 30000)


# ------------------------------------------------------------------ IMAGE batch and preview

@pytest.mark.parametrize("rate", [NTSC, 30000 / 1001])
def test_image_batch_matches_the_rule(rate):
    frames = torch.from_numpy(flash_frames_array(N_FRAMES, FLASHES, SIZE)).float() / 255
    s = sample_video(frames, frame_rate=rate)
    assert s.source_path is None and s.frame_rate == NTSC
    assert s.duration == Fraction(N_FRAMES * 1001, 30000)
    times = [Fraction(i * 1001, 30000) for i in range(N_FRAMES)]
    assert decoded_indices(s.clip_frames, clip_centers(*SIZE)) == as_decoded(
        expected_indices(times, 8, 0, s.duration), FLASHES)
    assert decoded_indices(s.sync_frames, sync_centers(*SIZE)) == as_decoded(
        expected_indices(times, 25, 0, s.duration), FLASHES)


def test_preview_is_a_small_float_image_batch(cfr_sampled):
    preview = cfr_sampled.preview
    assert preview.dtype == torch.float32 and preview.shape == (25, 120, 160, 3)
    assert 0.0 <= preview.min() and preview.max() <= 1.0
    big = torch.zeros(2, 300, 600, 3)
    assert sample_video(big, frame_rate=8).preview.shape == (2, 128, 256, 3)


def test_rotation_is_applied_before_resizing(media):
    s = sample_video(media["rotated"])
    assert (s.width, s.height) == (120, 160)
    # 8 frames at 25 fps -> preview at 8 fps shows frames 0 and 4 (first at or after 1/8 s)
    shown = s.preview[1].numpy() * 255
    assert shown.shape == (160, 120, 3)
    stored = flash_frame(4, False, SIZE).astype(np.float32)  # code 0b00000100: asymmetric
    counter_clockwise, clockwise = np.rot90(stored, 1), np.rot90(stored, -1)
    assert np.abs(shown - counter_clockwise).mean() < 3
    assert np.abs(shown - clockwise).mean() > 6


def test_progress_callback_reports_and_can_cancel(media):
    calls = []
    sample_video(media["vfr"], progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] <= calls[-1][1]

    def cancel(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample_video(media["vfr"], progress=cancel)


# ----------------------------------------------------------------------------- bad input

def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="not found.*Check the path"):
        probe_video(tmp_path / "nope.mp4")


def test_text_file_named_mp4(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("just some text, not a video\n" * 50)
    with pytest.raises(MediaError, match="not a readable media file"):
        sample_video(fake)


def test_audio_only_file(tmp_path):
    wav = write_tone_wav(tmp_path / "tone.wav", 16000, 0.5)
    with pytest.raises(MediaError, match="no video stream.*audio"):
        probe_video(wav)


def test_damaged_frames(tmp_path, media):
    data = bytearray(open(media["cfr"], "rb").read())
    payload, index = data.index(b"mdat") + 4, data.index(b"moov") - 4
    assert payload < index  # PyAV writes the frame data first, the index (moov) last
    data[payload:index] = bytes(index - payload)  # keep the index, zero every coded frame
    broken = tmp_path / "zeroed.mp4"
    broken.write_bytes(bytes(data))
    with pytest.raises(MediaError, match="cannot be decoded.*re-encode"):
        sample_video(broken)


def test_video_track_without_frames(tmp_path):
    path = str(tmp_path / "empty_track.mkv")
    with av.open(path, "w") as container:  # Matroska keeps a video track with no packets
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(make_tone(16000, 0.5)[None], format="fltp",
                                           layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in audio.encode(frame) + audio.encode(None):
            container.mux(packet)
    with pytest.raises(MediaError, match="contains no decodable frames"):
        probe_video(path)


@pytest.mark.parametrize("start", [3.3, 100.0])
def test_start_past_end(media, start):
    with pytest.raises(MediaError, match=r"past the end.*3\.203 s"):
        sample_video(media["cfr"], start_s=start)


def test_negative_start_and_duration(media):
    with pytest.raises(MediaError, match="start_s"):
        sample_video(media["cfr"], start_s=-1)
    with pytest.raises(MediaError, match="max_duration_s"):
        sample_video(media["cfr"], max_duration_s=-2)


def test_too_long_needs_max_duration():
    slow = torch.zeros(3, 8, 8, 3)  # three frames of 300 s each
    with pytest.raises(MediaError, match=f"at most {MAX_DURATION_S:g} s.*max_duration_s"):
        sample_video(slow, frame_rate=Fraction(1, 300))
    s = sample_video(slow, frame_rate=Fraction(1, 300), max_duration_s=2)
    assert len(s.clip_frames) == 16 and len(s.sync_frames) == 50  # one frame repeated


def test_too_large_frames():
    wide = torch.zeros(1, 2, MAX_FRAME_SIDE + 1, 3, dtype=torch.uint8)
    with pytest.raises(MediaError, match=str(MAX_FRAME_SIDE)):
        sample_video(wide, frame_rate=1)


def test_too_short_for_one_frame():
    with pytest.raises(MediaError, match="too short"):
        sample_video(torch.zeros(1, 8, 8, 3), frame_rate=10)  # 0.1 s < 1/8 s


def test_batch_needs_rate_and_shape():
    with pytest.raises(MediaError, match="frame_rate"):
        sample_video(torch.zeros(4, 8, 8, 3))
    with pytest.raises(MediaError, match="IMAGE batch"):
        sample_video(torch.zeros(8, 8, 3), frame_rate=8)
