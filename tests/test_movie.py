"""Movie plates: exact rates, random access, variable frame rate, audio, damage."""

import os
from fractions import Fraction

import av
import numpy as np
import pytest
import soundfile

from dubplate.core.errors import DubplateError
from dubplate.core.media import open_plate
from tests.fixtures import numbered_frames, write_movie


def level(pixels):
    return float(np.asarray(pixels, np.float32).mean())


def test_rate_stays_an_exact_rational(tmp_path):
    path = write_movie(tmp_path / "ntsc.mp4", numbered_frames(6), fps=Fraction(24000, 1001))
    plate = open_plate(path)
    assert plate.info.fps == Fraction(24000, 1001)
    assert plate.info.manifest()["fps"] == "24000/1001"
    assert plate.time_of(5) == Fraction(5 * 1001, 24000)


@pytest.mark.parametrize("suffix", [".mp4", ".mts", ".mkv"])
def test_frames_decode_in_order_and_by_random_access(tmp_path, suffix):
    """With B-frames and keyframes every 6: an MPEG-TS (AVCHD's .mts) seeks by decode time, and
    sought by a frame's presentation time it landed a keyframe late (frame 0 not found)."""
    frames = numbered_frames(20)
    options = {"crf": "10", "bf": "2", "g": "6"}
    plate = open_plate(write_movie(tmp_path / f"m{suffix}", frames, options=options))
    assert plate.select() == list(range(20))
    for number in [15, 3, 4, 19, 0]:
        assert abs(level(plate.read(number)) - level(frames[number])) < 2, number
    levels = [level(pixels) for _, pixels in plate.frames()]
    assert np.all(np.diff(levels) > 5)


def test_frames_a_few_apart_are_decoded_on_and_sought_only_past_a_keyframe(tmp_path, monkeypatch):
    """A sample of frames spread over a shot is read on from where the decoder is: in a
    long-GOP movie each seek decodes again from its keyframe (16 of a 1080p shot's frames took
    10 s that way, against 1 s decoded on)."""
    frames = numbered_frames(60)
    options = {"crf": "10", "x264-params": "keyint=25:min-keyint=25:scenecut=0"}
    plate = open_plate(write_movie(tmp_path / "gop.mp4", frames, options=options))
    seeks, seek = [], plate._seek
    monkeypatch.setattr(
        plate, "_seek", lambda at: (seeks.append(plate._index_of_pts[at]), seek(at))
    )
    wanted = [2, 5, 11, 20, 27, 33, 58, 4]
    for number in wanted:
        assert abs(level(plate.read(number)) - level(frames[number])) < 2, number
    # The first read; past the keyframes at 25 and 50; back to 4.
    assert seeks == [2, 27, 58, 4]


def test_h264_with_b_frames_in_avi_is_said_to_be_why_it_cannot_be_read(tmp_path):
    """AVI keeps no presentation times: decoded in file order, the frames come out of order and
    frame 1 is not found, which is not a damaged file. Without B-frames it reads."""
    frames = numbered_frames(12)
    unordered = write_movie(tmp_path / "bf.avi", frames, options={"crf": "10", "bf": "2"})
    with pytest.raises(
        DubplateError,
        match=r"bf\.avi: frame 1 of 12 could not be decoded \(H\.264 with B-frames in AVI",
    ):
        list(open_plate(unordered).frames())
    ordered = open_plate(write_movie(tmp_path / "ip.avi", frames, options={"bf": "0"}))
    levels = [level(pixels) for _, pixels in ordered.frames()]
    assert len(levels) == 12 and np.all(np.diff(levels) > 5)


def test_variable_frame_rate_uses_each_frames_time(tmp_path):
    times = [Fraction(t, 1000) for t in (0, 40, 80, 180, 220, 400)]
    plate = open_plate(write_movie(tmp_path / "vfr.mp4", numbered_frames(6), times=times))
    assert [plate.time_of(n) for n in plate.select()] == times


def test_truncated_movie_is_an_error_naming_the_file(tmp_path):
    path = write_movie(tmp_path / "cut.mp4", numbered_frames(40, (128, 96)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DubplateError, match="cut.mp4"):
        plate = open_plate(path)
        for _ in plate.frames():
            pass


def test_not_a_movie(tmp_path):
    path = tmp_path / "notes.mov"
    path.write_text("not a movie")
    with pytest.raises(DubplateError, match=r"notes\.mov: cannot open movie"):
        open_plate(path)


def test_layer_option_is_refused_for_movies(tmp_path):
    path = write_movie(tmp_path / "m.mp4", numbered_frames(2))
    with pytest.raises(DubplateError, match="--layer applies to EXR"):
        open_plate(path, layer="diffuse")


def test_unknown_file_kind(tmp_path):
    path = tmp_path / "plate.txt"
    path.write_text("hello")
    with pytest.raises(DubplateError, match=r"plate\.txt: no plate reader recognises"):
        open_plate(path)


def test_shared_clips_open_with_their_rates(shared_data):
    expected = {
        "man_office_6s.mp4": (135, Fraction(1350, 61)),
        "woman_flag_b_8s.mp4": (200, Fraction(25)),  # MPEG-4 part 2
        "woman_seated_hd_20s.mp4": (502, Fraction(25)),  # HEVC, portrait
    }
    for name, (count, rate) in expected.items():
        plate = open_plate(shared_data / "footage" / name)
        assert (len(plate.select()), plate.info.fps) == (count, rate), name
    office = open_plate(shared_data / "footage" / "man_office_6s.mp4")
    # Variable rate: the last frame's own time, not 134 / (1350/61) = 6.05 s.
    assert float(office.time_of(134)) == pytest.approx(6.0667, abs=1e-3)
    portrait = open_plate(shared_data / "footage" / "woman_seated_hd_20s.mp4")
    assert portrait.read(501).shape == (1920, 1080, 3)


def test_lossless_movie_decodes_to_the_very_values_written(tmp_path):
    from dubplate.core.media.movie_writer import LOSSLESS, REVIEW
    from dubplate.core.media.movie_writer import write_movie as encode

    frames = [np.random.default_rng(i).integers(0, 256, (48, 64, 3), np.uint8) for i in range(3)]
    encode(tmp_path / "exact.mp4", frames, Fraction(25), codec=LOSSLESS)
    encode(tmp_path / "review.mp4", frames, Fraction(25), codec=REVIEW)
    exact, review = open_plate(tmp_path / "exact.mp4"), open_plate(tmp_path / "review.mp4")
    for number, frame in enumerate(frames):
        np.testing.assert_array_equal(exact.read(number), frame)
        assert not np.array_equal(review.read(number), frame)  # noise does not survive CRF 18


def test_a_deep_movie_reads_as_16_bit_and_its_lossless_dub_keeps_every_value(tmp_path):
    from dubplate.core.media.movie_writer import DEEP_LOSSLESS, DEEP_REVIEW, output_codec
    from dubplate.core.media.movie_writer import write_movie as encode

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 65536, (48, 64, 3)).astype(np.uint16) for _ in range(3)]
    assert output_codec(deep=True, lossless=True) == DEEP_LOSSLESS
    encode(tmp_path / "exact.mkv", frames, Fraction(25), codec=DEEP_LOSSLESS)
    exact = open_plate(tmp_path / "exact.mkv")
    assert exact.deep and exact.read(0).dtype == np.uint16
    for number, frame in enumerate(frames):
        np.testing.assert_array_equal(exact.read(number), frame)
    # Flat blocks survive ProRes' 4:2:2 chroma: within a 10-bit step of what was given.
    blocks = [colour_blocks(seed).astype(np.uint16) * 257 for seed in range(3)]
    encode(tmp_path / "review.mov", blocks, Fraction(25), codec=DEEP_REVIEW)
    review = open_plate(tmp_path / "review.mov")
    assert review.deep and not review.full_chroma
    error = np.stack([review.read(n).astype(int) - f for n, f in enumerate(blocks)]) / 64
    assert np.median(np.abs(error)) < 1
    with pytest.raises(DubplateError, match=r"8bit\.mov: ProRes 422 HQ takes uint16"):
        encode(tmp_path / "8bit.mov", [frames[0].astype(np.uint8)], Fraction(25), codec=DEEP_REVIEW)


@pytest.mark.parametrize("suffix", [".mov", ".mp4", ".mkv"])
def test_a_movies_timecode_is_read_and_written(tmp_path, suffix):
    from dubplate.core.media.movie_writer import DEEP_LOSSLESS, DEEP_REVIEW, REVIEW
    from dubplate.core.media.movie_writer import write_movie as encode

    codec = {".mov": DEEP_REVIEW, ".mp4": REVIEW, ".mkv": DEEP_LOSSLESS}[suffix]
    dtype = np.uint16 if codec.deep else np.uint8
    frames = [np.zeros((48, 64, 3), dtype)] * 2
    path = tmp_path / f"tc{suffix}"
    encode(path, frames, Fraction(30000, 1001), codec=codec, timecode="01:00:10;02")
    assert open_plate(path).info.timecode == "01:00:10;02"


def test_a_movies_alpha_is_said_to_be_left_out(tmp_path, caplog):
    frames = [np.full((48, 64, 3), 40000, np.uint16)] * 2
    options = {"profile": "4"}
    path = write_movie(
        tmp_path / "a.mov", frames, encoder="prores_ks", pix_fmt="yuva444p10le", options=options
    )
    plate = open_plate(path)
    assert plate.info.channels == ("R", "G", "B") and plate.deep and plate.full_chroma
    # ProRes decodes to 12 bits a sample whatever it was encoded from.
    assert "a.mov: its alpha channel (yuva444p12le) is not read" in caplog.text


@pytest.mark.parametrize("tags", [(1, 2, 1, 1), (0, 2, 1, 13)], ids=["full-range", "rgb"])
def test_prores_decodes_as_written_from_any_source_encoding(tmp_path, tags):
    """MOV cannot say full range and YUV cannot be tagged with the RGB "matrix": ProRes from a
    full-range or an RGB (FFV1) source is written limited range, BT.709 where the source is RGB."""
    from dubplate.core.media.movie_writer import DEEP_REVIEW
    from dubplate.core.media.movie_writer import write_movie as encode
    from dubplate.core.media.yuv import YuvEncoding

    blocks = [colour_blocks(seed).astype(np.uint16) * 257 for seed in range(2)]
    encode(tmp_path / "p.mov", blocks, Fraction(25), codec=DEEP_REVIEW, yuv=YuvEncoding(*tags))
    review = open_plate(tmp_path / "p.mov")
    assert review.yuv.colorspace == (tags[0] or 1) and review.yuv.color_range == 1
    error = np.stack([review.read(n).astype(int) - f for n, f in enumerate(blocks)]) / 64
    assert np.median(np.abs(error)) < 1


def test_a_timecode_that_cannot_be_counted_on_is_not_carried(tmp_path, caplog):
    # Matroska keeps any text as a timecode tag (MOV and MP4 muxers refuse it).
    path = write_movie(tmp_path / "odd.mkv", numbered_frames(2), timecode="noon")
    assert open_plate(path).info.timecode is None
    expected = "odd.mkv: timecode: 'noon' cannot be counted at 25 fps (Input timecode 'noon'"
    assert expected in caplog.text


def test_timecode_arithmetic_counts_drop_frames_and_names_a_bad_one():
    from dubplate.core.errors import DubplateError
    from dubplate.core.media.timing import timecode_after

    # 29.97 drop-frame skips frame numbers 0 and 1 at each minute but every tenth.
    assert timecode_after("01:00:59;29", 1, Fraction(30000, 1001)) == "01:01:00;02"
    assert timecode_after("01:09:59;29", 1, Fraction(30000, 1001)) == "01:10:00;00"
    assert timecode_after("00:59:59:23", 2, Fraction(25)) == "01:00:00:00"
    # Non-drop at 29.97 stays non-drop: 1800 frames are a minute of its labels.
    assert timecode_after("01:00:00:00", 0, Fraction(30000, 1001)) == "01:00:00:00"
    assert timecode_after("01:00:00:00", 1800, Fraction(30000, 1001)) == "01:01:00:00"
    with pytest.raises(DubplateError, match=r"take\.mov: timecode: 'noon'"):
        timecode_after("noon", 1, Fraction(25), "take.mov: timecode")


def colour_blocks(seed, shape=(64, 96), block=16):
    """Flat blocks of random colours: 4:2:0 chroma loses little inside a block."""
    rows, cols = shape[0] // block, shape[1] // block
    colours = np.random.default_rng(seed).integers(16, 240, (rows, cols, 3), np.uint8)
    return np.repeat(np.repeat(colours, block, axis=0), block, axis=1)


@pytest.mark.parametrize("tags", [(1, 1, 1, 1), (2, 0, 2, 2)], ids=["bt709", "untagged"])
def test_review_movie_decodes_without_bias_and_keeps_the_source_tags(tmp_path, tags):
    from dubplate.core.media.movie_writer import REVIEW
    from dubplate.core.media.movie_writer import write_movie as encode
    from dubplate.core.media.yuv import YuvEncoding

    frames = [colour_blocks(seed) for seed in range(3)]
    encode(tmp_path / "review.mp4", frames, Fraction(25), codec=REVIEW, yuv=YuvEncoding(*tags))
    review = open_plate(tmp_path / "review.mp4")
    assert review.yuv == YuvEncoding(*tags)
    error = np.stack([review.read(n).astype(int) - f for n, f in enumerate(frames)])
    # Truncating conversions darkened such frames by 1.2 code values on average.
    assert np.abs(error.reshape(-1, 3).mean(axis=0)).max() < 0.3


def test_a_bt709_movie_decodes_with_the_bt709_matrix(tmp_path):
    # Pure red in BT.709 limited range; read with BT.601's matrix its red would be 233.
    planes = np.empty((48 * 3 // 2, 64), np.uint8)
    planes[:48], planes[48:60], planes[60:] = 63, 102, 240
    with av.open(str(tmp_path / "red.mp4"), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.height, video.width, video.pix_fmt = 48, 64, "yuv420p"
        video.options = {"qp": "0"}
        video.codec_context.colorspace, video.codec_context.color_range = 1, 1
        container.mux(video.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")))
        container.mux(video.encode())
    red = open_plate(tmp_path / "red.mp4").read(0)
    np.testing.assert_allclose(red.reshape(-1, 3).mean(axis=0), (255, 0, 0), atol=1.5)


@pytest.mark.parametrize(
    "codec_name,encoder",
    [
        ("REVIEW", "aac"),
        ("LOSSLESS", "alac"),
        ("DEEP_REVIEW", "pcm_s24le"),
        ("DEEP_LOSSLESS", "flac"),
    ],
)
def test_a_dub_keeps_every_channel_of_its_sound_and_a_master_keeps_every_sample(
    tmp_path, codec_name, encoder
):
    """A 5.1 dub keeps its centre channel, where the dialogue is; beside a lossless or ProRes
    master the sound is stored losslessly (24-bit samples come back as given)."""
    from dubplate.core.media import movie_writer
    from dubplate.core.media.audio import Audio

    codec = getattr(movie_writer, codec_name)
    rng = np.random.default_rng(0)
    samples = (np.round(rng.uniform(-0.5, 0.5, (48000, 6)) * 2**23) / 2**23).astype(np.float32)
    dtype = np.uint16 if codec.deep else np.uint8
    frames = [np.zeros((16, 32, 3), dtype)] * 25
    path = tmp_path / f"dub{codec.suffix}"
    movie_writer.write_movie(path, frames, Fraction(25), Audio(samples, 48000, "dub.wav"), codec)
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.name == encoder
    sound = open_plate(path).audio()
    assert sound.channels == 6 and sound.rate == 48000
    if encoder != "aac":
        np.testing.assert_array_equal(sound.samples[:48000], samples)


@pytest.mark.parametrize(
    ("codec_name", "encoder"), [("REVIEW", "aac"), ("LOSSLESS", "flac"), ("DEEP_LOSSLESS", "flac")]
)
def test_a_7_1_dub_is_muxed_with_its_eight_channels(tmp_path, codec_name, encoder):
    """PyAV gives 8 planar channels 9 planes and failed on them (an IndexError, not an error
    naming the file): the samples go in packed. ALAC takes 8 channels only as 7.1(wide), other
    speakers: beside lossless H.264 they go as FLAC."""
    from dubplate.core.media import movie_writer
    from dubplate.core.media.audio import Audio

    codec = getattr(movie_writer, codec_name)
    samples = np.zeros((9600, 8), np.float32)
    samples[:, 2] = 0.25 * np.sin(2 * np.pi * 440 * np.arange(9600) / 48000)
    frames = [np.zeros((16, 32, 3), np.uint16 if codec.deep else np.uint8)] * 5
    path = tmp_path / f"dub{codec.suffix}"
    movie_writer.write_movie(path, frames, Fraction(25), Audio(samples, 48000, "dub.wav"), codec)
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.name == encoder
    assert movie_writer.muxed_audio_codec(codec, 8).encoder == encoder  # as the manifest says
    sound = open_plate(path).audio()
    assert sound.channels == 8
    loudest = np.abs(sound.samples[1000:8000]).max(axis=0)
    assert np.argmax(loudest) == 2 and loudest[2] == pytest.approx(0.25, abs=0.02)


def _wav_for_speakers(path, layout: str | None, channels: int):
    """A WAV whose header declares `layout` (its channel mask), or none, with a tone on the
    third channel (the centre, where a layout has one)."""
    samples = np.zeros((channels, 4800), np.int16)
    samples[2] = (8000 * np.sin(2 * np.pi * 440 * np.arange(4800) / 48000)).astype(np.int16)
    if layout is None:  # libsndfile writes no channel mask
        soundfile.write(str(path), samples.T, 48000)
        return path
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=48000)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(
            samples.T.reshape(1, -1).copy(), format="s16", layout=stream.layout.name
        )
        frame.sample_rate, frame.pts = 48000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(
    ("layout", "review", "lossless", "prores", "ffv1"),
    [
        ("4.0", "4.0", "4.0", "4.0", "4.0"),  # LCRS
        ("5.1(side)", "5.1", "5.1(side)", "5.1(side)", "5.1(side)"),
        ("2.1", "2.1", "3.0", "2.1", "2.1"),  # neither ALAC nor MP4's FLAC carries it
    ],
)
def test_a_dub_sound_keeps_the_speakers_its_file_declares(
    tmp_path, layout, review, lossless, prores, ffv1
):
    """An LCRS dub (4.0) was tagged quad, and a side-surround 5.1 as back-surround 5.1, from
    their channel counts alone: the surround played from other speakers. Each movie now carries
    the file's own where its codec can (ALAC beside lossless H.264 gives way to FLAC, whose MP4
    order is 5.1(side)); what it cannot carry is tagged as before, and the manifest's layout
    (`muxed_layout`) is what the movie reads back as. The channels stay in their order."""
    from dubplate.core.media import movie_writer
    from dubplate.core.media.audio import open_audio

    channels = len(av.AudioLayout(layout).channels)
    sound = open_audio(_wav_for_speakers(tmp_path / "dub.wav", layout, channels))
    assert sound.layout == layout
    expected = {"REVIEW": review, "LOSSLESS": lossless, "DEEP_REVIEW": prores}
    for name, tagged in {**expected, "DEEP_LOSSLESS": ffv1}.items():
        codec = getattr(movie_writer, name)
        frames = [np.zeros((16, 32, 3), np.uint16 if codec.deep else np.uint8)] * 5
        path = tmp_path / f"{name}{codec.suffix}"
        movie_writer.write_movie(path, frames, Fraction(25), sound, codec)
        with av.open(str(path)) as container:
            assert container.streams.audio[0].layout.name == tagged, name
        audio_codec = movie_writer.muxed_audio_codec(codec, sound.channels, sound.layout)
        assert movie_writer.muxed_layout(audio_codec, sound.channels, sound.layout) == tagged
        loudest = np.abs(open_plate(path).audio().samples[1000:4000]).max(axis=0)
        assert np.argmax(loudest) == 2, name


def test_a_dub_sound_without_declared_speakers_is_tagged_by_its_count(tmp_path):
    """A WAV without a channel mask: 4 channels go as quad, as before; over 8 channels a movie
    cannot carry, which the error says (a lossless movie's gave a KeyError)."""
    from dubplate.core.media import movie_writer
    from dubplate.core.media.audio import open_audio

    undeclared = open_audio(_wav_for_speakers(tmp_path / "plain.wav", None, 4))
    assert undeclared.layout is None
    path = tmp_path / "plain.mp4"
    plain = [np.zeros((16, 32, 3), np.uint8)]
    movie_writer.write_movie(path, plain, Fraction(25), undeclared, movie_writer.REVIEW)
    with av.open(str(path)) as container:
        assert container.streams.audio[0].layout.name == "quad"
    many = open_audio(_wav_for_speakers(tmp_path / "ten.wav", None, 10))
    for codec in (movie_writer.REVIEW, movie_writer.LOSSLESS):
        with pytest.raises(DubplateError, match="ten.wav: 10 channels"):
            movie_writer.write_movie(tmp_path / "ten.mp4", plain, Fraction(25), many, codec)


def test_a_dub_sound_shorter_than_the_picture_is_followed_by_silence(tmp_path):
    """A dub padded with --pad: 0.6 s of sound under 1 s of picture runs on silent to the
    picture's end (losslessly, so the silence is exactly zero)."""
    from dubplate.core.media.audio import Audio
    from dubplate.core.media.movie_writer import LOSSLESS, write_movie

    tone = np.round(0.25 * np.sin(2 * np.pi * 440 * np.arange(28800) / 48000) * 2**23) / 2**23
    tone = tone.astype(np.float32)  # 24-bit samples: what ALAC keeps exactly
    frames = [np.zeros((16, 32, 3), np.uint8)] * 25
    path = tmp_path / f"dub{LOSSLESS.suffix}"
    write_movie(path, frames, Fraction(25), Audio(tone[:, None], 48000, "dub.wav"), LOSSLESS)
    sound = open_plate(path).audio()
    assert sound.samples.shape[0] == 48000
    np.testing.assert_array_equal(sound.samples[:28800, 0], tone)
    assert not sound.samples[28800:].any()


def test_a_lossless_rgb_dub_keeps_the_sources_primaries_and_transfer(tmp_path):
    """RGB carries no YUV matrix, but a BT.2020 HLG source's dub is still BT.2020 HLG."""
    from dubplate.core.media.movie_writer import LOSSLESS, write_movie
    from dubplate.core.media.yuv import YuvEncoding

    hlg = YuvEncoding(colorspace=9, color_range=1, primaries=9, trc=18)
    path = tmp_path / f"hlg{LOSSLESS.suffix}"
    write_movie(path, numbered_frames(3), Fraction(25), codec=LOSSLESS, yuv=hlg)
    with av.open(str(path)) as container:
        context = container.streams.video[0].codec_context
        assert (int(context.color_primaries), int(context.color_trc)) == (9, 18)


@pytest.mark.parametrize(
    "codec_name", ["REVIEW", "LOSSLESS", "DEEP_REVIEW", "DEEP_REVIEW_FULL_CHROMA", "DEEP_LOSSLESS"]
)
def test_an_anamorphic_movie_is_dubbed_anamorphic(tmp_path, codec_name, caplog):
    """Pixels 4:3 as wide as high (HDV's 1440 x 1080 shown 1920 x 1080): a dub written without
    it plays squeezed. MOV keeps it in its own box, x264 in its bitstream; FFV1 in Matroska
    cannot be given it here, and the log says so."""
    from dubplate.core.media import movie_writer

    codec = getattr(movie_writer, codec_name)
    frames = numbered_frames(3)
    if codec.deep:
        frames = [f.astype(np.uint16) * 257 for f in frames]
    source = tmp_path / f"hdv{codec.suffix}"
    movie_writer.write_movie(source, frames, Fraction(25), codec=codec, pixel_aspect=Fraction(4, 3))
    plate = open_plate(source)
    kept = codec_name != "DEEP_LOSSLESS"
    assert plate.pixel_aspect == (Fraction(4, 3) if kept else None)
    assert ("hdv.mkv: its pixels are 4/3 as wide as high" in caplog.text) == (not kept)
    square = tmp_path / f"square{codec.suffix}"
    movie_writer.write_movie(square, frames, Fraction(25), codec=codec)
    assert open_plate(square).pixel_aspect is None


def test_dub_sound_a_movie_cannot_carry_as_it_is(tmp_path, caplog):
    from dubplate.core.media.audio import Audio
    from dubplate.core.media.movie_writer import REVIEW
    from dubplate.core.media.movie_writer import write_movie as encode

    frames = numbered_frames(5)
    high = Audio(np.zeros((192000 // 5, 2), np.float32), 192000, "high.wav")
    encode(tmp_path / "high.mp4", frames, Fraction(25), high, REVIEW)
    assert open_plate(tmp_path / "high.mp4").audio().rate == 48000
    assert "high.wav: 192000 Hz is over what aac takes; muxed at 48000 Hz" in caplog.text
    pulled = Audio(np.zeros((47952 // 5, 2), np.float32), 47952, "pulled.wav")  # 48 kHz / 1.001
    encode(tmp_path / "pulled.mp4", frames, Fraction(24000, 1001), pulled, REVIEW)
    assert open_plate(tmp_path / "pulled.mp4").audio().rate == 48000
    assert "pulled.wav: 47952 Hz is not a rate aac takes; muxed at 48000 Hz" in caplog.text
    many = Audio(np.zeros((4800, 10), np.float32), 48000, "many.wav")
    with pytest.raises(DubplateError, match=r"many\.wav: 10 channels; .* at most 8"):
        encode(tmp_path / "many.mp4", frames, Fraction(25), many, REVIEW)
    assert not (tmp_path / "many.mp4").exists()


def test_odd_sized_frames_lose_a_row_only_where_the_chroma_needs_it(tmp_path, caplog):
    from dubplate.core.media.movie_writer import (
        DEEP_REVIEW,
        DEEP_REVIEW_FULL_CHROMA,
        LOSSLESS,
        REVIEW,
    )
    from dubplate.core.media.movie_writer import write_movie as encode

    frames = [np.random.default_rng(0).integers(0, 256, (17, 33, 3), np.uint8)] * 2
    encode(tmp_path / "exact.mp4", frames, Fraction(25), codec=LOSSLESS)
    np.testing.assert_array_equal(open_plate(tmp_path / "exact.mp4").read(0), frames[0])
    assert "even sizes" not in caplog.text
    deep = [frames[0].astype(np.uint16) * 257] * 2
    for codec in (DEEP_REVIEW_FULL_CHROMA, DEEP_REVIEW):
        encode(tmp_path / "deep.mov", deep, Fraction(25), codec=codec)
        info = open_plate(tmp_path / "deep.mov").info
        assert (info.width, info.height) == (33, 17)
    assert "even sizes" not in caplog.text
    encode(tmp_path / "review.mp4", frames, Fraction(25), codec=REVIEW)
    info = open_plate(tmp_path / "review.mp4").info
    assert (info.width, info.height) == (32, 16)
    assert "33x17 frames are written 32x16: H.264 CRF 18, 4:2:0 needs even sizes" in caplog.text


@pytest.mark.parametrize("degrees,turns", [(-90, -1), (90, 1), (180, 2)])
def test_a_movie_shown_turned_is_read_upright(tmp_path, degrees, turns):
    """A phone's portrait take is stored on its side with a display matrix: its frames read as
    players show them, so the face is upright for the tracker and the dub plays the right way."""
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:8, :8] = 255  # a mark in the stored frame's top-left corner
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264rgb", rate=25)
        video.width, video.height, video.pix_fmt = 64, 32, "rgb24"
        video.options = {"qp": "0"}
        video.set_display_rotation(degrees)
        for _ in range(3):
            container.mux(video.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")))
        container.mux(video.encode())
    plate = open_plate(path)
    upright = np.rot90(stored, turns)
    assert (plate.info.height, plate.info.width) == upright.shape[:2]
    for number in (2, 0):
        np.testing.assert_array_equal(plate.read(number), upright)


def test_a_variable_rate_dub_shows_each_frame_at_its_own_time(tmp_path):
    from dubplate.core.media.audio import Audio
    from dubplate.core.media.movie_writer import LOSSLESS
    from dubplate.core.media.movie_writer import write_movie as encode

    times = [Fraction(t, 1000) for t in (0, 40, 80, 180, 220, 400)]
    frames = numbered_frames(6)
    sound = Audio(np.zeros((48000, 2), np.float32), 48000, "dub.wav")
    path = tmp_path / "vfr_dub.mp4"
    encode(path, frames, Fraction(25), sound, LOSSLESS, times=times)
    dub = open_plate(path)
    assert [dub.time_of(n) for n in dub.select()] == times
    for number, frame in enumerate(frames):
        np.testing.assert_array_equal(dub.read(number), frame)
    assert float(dub.audio().duration) == pytest.approx(0.44, abs=0.03)  # to the last frame's end


def test_a_closed_movie_holds_no_file_open(tmp_path):
    """A host dubs shot after shot in one process: each movie it opens lets go of its file."""
    path = write_movie(tmp_path / "shot.mp4", numbered_frames(5))
    before = len(os.listdir("/proc/self/fd"))
    with open_plate(path) as plate:
        plate.read(3)
        assert len(os.listdir("/proc/self/fd")) > before
    assert len(os.listdir("/proc/self/fd")) == before
