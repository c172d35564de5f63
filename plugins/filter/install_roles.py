# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of the supervisor and ffmpeg roles, in Python where they are tested rather than in long Jinja."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

_SERVICE_KEYS = ("chosen", "facts", "install_method", "pip_venv", "pip_service_name", "platform_service_name")


def supervisor_service_name(inputs):
    """The service that runs supervisord here: the user's choice, then the unit the live supervisord runs in, then the
    pip unit when this role's virtualenv holds (or is about to hold) supervisord, then the platform package's name."""
    if not isinstance(inputs, dict) or any(key not in inputs for key in _SERVICE_KEYS):
        raise AnsibleFilterError("supervisor_service_name: expects a dict with the keys %s" % ", ".join(_SERVICE_KEYS))
    facts = inputs["facts"] or {}
    if inputs["chosen"]:
        return inputs["chosen"]
    if facts.get("service_name"):
        return facts["service_name"]
    supervisord = facts.get("supervisord_path") or ""
    venv = str(inputs["pip_venv"] or "").rstrip("/")
    if supervisord:
        from_pip = bool(venv) and supervisord.startswith(venv + "/")
    else:
        from_pip = inputs["install_method"] == "pip"
    return inputs["pip_service_name"] if from_pip else inputs["platform_service_name"]


def _names(listing):
    """The names in an `ffmpeg -encoders` or `-muxers` listing: the second column of each line after the header."""
    names = []
    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 1:
            names.append(fields[1])
    return names


def ffmpeg_hls_support(stdout, required_muxers, h264_encoders, aac_encoders):
    """What the ffmpeg role's verify call found: the binary, the first acceptable H.264 and AAC encoders (or None), the
    missing parts in words (empty when it can encode HLS), and whether one second was encoded.

    The call prints "bin PATH", then the -encoders and -muxers listings after "--- encoders" and "--- muxers" lines,
    then "--- encode done" or "--- encode skipped".
    """
    sections = str(stdout).split("\n--- ")
    if len(sections) < 3 or not sections[0].startswith("bin "):
        raise AnsibleFilterError("ffmpeg_hls_support: not the output of the ffmpeg role's verify call: %r" % stdout[:200])
    encoders, muxers = _names(sections[1]), _names(sections[2])
    h264 = next((name for name in h264_encoders if name in encoders), None)
    aac = next((name for name in aac_encoders if name in encoders), None)
    missing = ["muxer %s" % name for name in required_muxers if name not in muxers]
    if h264 is None:
        missing.append("an H.264 encoder (one of %s)" % ", ".join(h264_encoders))
    if aac is None:
        missing.append("an AAC encoder (one of %s)" % ", ".join(aac_encoders))
    return {
        "bin": sections[0][len("bin "):],
        "h264": h264,
        "aac": aac,
        "missing": missing,
        "encoded": sections[-1].strip() == "encode done",
    }


class FilterModule(object):
    def filters(self):
        return {
            "supervisor_service_name": supervisor_service_name,
            "ffmpeg_hls_support": ffmpeg_hls_support,
        }
