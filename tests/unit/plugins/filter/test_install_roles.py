"""The supervisor and ffmpeg roles' decisions: which service runs supervisord, and what an ffmpeg lacks for HLS."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.elms.queue_workers.plugins.filter.install_roles import ffmpeg_hls_support, supervisor_service_name


def inputs(**changes):
    base = {"chosen": "", "facts": {"service_name": None, "supervisord_path": None}, "install_method": "package",
            "pip_venv": "/opt/supervisor", "pip_service_name": "supervisord-venv", "platform_service_name": "supervisor"}
    base.update(changes)
    return base


@pytest.mark.parametrize("changes, expected", [
    ({}, "supervisor"),                                                               # nothing installed: the package
    ({"install_method": "pip"}, "supervisord-venv"),                                  # nothing installed: pip's unit
    ({"chosen": "mine"}, "mine"),                                                     # the user's choice first
    ({"chosen": "mine", "facts": {"service_name": "supervisor"}}, "mine"),
    ({"facts": {"service_name": "supervisord", "supervisord_path": "/usr/bin/supervisord"}}, "supervisord"),
    ({"facts": {"service_name": None, "supervisord_path": "/opt/supervisor/bin/supervisord"}}, "supervisord-venv"),
    # pip asked for, but a distro supervisord is already there: it is the one started.
    ({"install_method": "pip", "facts": {"service_name": None, "supervisord_path": "/usr/bin/supervisord"}}, "supervisor"),
    # a venv path that only starts like the role's is not the role's.
    ({"facts": {"service_name": None, "supervisord_path": "/opt/supervisor2/bin/supervisord"}}, "supervisor"),
    ({"pip_venv": "/opt/supervisor/", "facts": {"supervisord_path": "/opt/supervisor/bin/supervisord"}}, "supervisord-venv"),
])
def test_the_service_name(changes, expected):
    assert supervisor_service_name(inputs(**changes)) == expected


def test_missing_inputs_are_named():
    with pytest.raises(AnsibleFilterError, match="pip_venv"):
        supervisor_service_name({"chosen": ""})


ENCODERS = """encoders
Encoders:
 V..... = Video
 A..... = Audio
 ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (codec h264)
 V....D h264_v4l2m2m         V4L2 mem2mem H.264 encoder wrapper (codec h264)
 A....D aac                  AAC (Advanced Audio Coding)"""
MUXERS = """muxers
 File formats:
 D. = Demuxing supported
 .E = Muxing supported
 --
  E hls             Apple HTTP Live Streaming
  E mp4             MP4 (MPEG-4 Part 14)"""


def output(encoders=ENCODERS, muxers=MUXERS, last="encode done"):
    return "bin /usr/bin/ffmpeg\n--- %s\n--- %s\n--- %s" % (encoders, muxers, last)


def test_a_capable_ffmpeg():
    found = ffmpeg_hls_support(output(), ["hls"], ["libopenh264", "libx264", "h264_v4l2m2m"], ["libfdk_aac", "aac"])
    assert found == {"bin": "/usr/bin/ffmpeg", "h264": "libx264", "aac": "aac", "missing": [], "encoded": True}


def test_what_is_missing_is_said_in_words():
    encoders = "\n".join(line for line in ENCODERS.splitlines() if "libx264" not in line and "v4l2" not in line)
    muxers = "\n".join(line for line in MUXERS.splitlines() if " hls " not in line)
    found = ffmpeg_hls_support(output(encoders, muxers, "encode skipped"), ["hls", "mpegts"], ["libx264"], ["aac"])
    assert found["missing"] == ["muxer hls", "muxer mpegts", "an H.264 encoder (one of libx264)"]
    assert (found["h264"], found["aac"], found["encoded"]) == (None, "aac", False)


def test_a_header_word_is_not_taken_for_an_encoder():
    # "Encoders:" has one field and " V..... = Video" names "=": neither is an encoder anyone asks for.
    assert ffmpeg_hls_support(output(), ["hls"], ["Encoders:", "Video"], ["aac"])["h264"] is None


def test_other_output_is_refused():
    with pytest.raises(AnsibleFilterError, match="verify call"):
        ffmpeg_hls_support("ffmpeg version 6.1", ["hls"], ["libx264"], ["aac"])
