#!/usr/bin/env python3
"""Build the local Docker images the tests and the demo run in.

No container registry can be assumed, so base images come from debootstrap using the
Debian mirror this host's own apt uses, and every other image is a `docker build` FROM
those. Each image is tagged with a hash of what it is built from; an image whose hash
tag exists is reused, so a second run costs nothing and a changed Dockerfile rebuilds.

Usage: images.py NAME [NAME ...]   (names: see IMAGES; prints the image references)
"""

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES_DIR = os.path.join(os.path.dirname(HERE), "images")
REPOSITORY = "elms-test"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

# name -> (Debian suite, parent image name or None for debootstrap, Dockerfile)
IMAGES = {
    "debian12-base": ("bookworm", None, None),
    "debian12-systemd": ("bookworm", "debian12-base", "systemd.Dockerfile"),
    "debian12-php": ("bookworm", "debian12-systemd", "php.Dockerfile"),
    "debian12-app": ("bookworm", "debian12-php", "app.Dockerfile"),
    "debian13-base": ("trixie", None, None),
    "debian13-systemd": ("trixie", "debian13-base", "systemd.Dockerfile"),
    "debian13-php": ("trixie", "debian13-systemd", "php.Dockerfile"),
    "debian13-controller": ("trixie", "debian13-base", "controller.Dockerfile"),
}


def log(message):
    print("images: %s" % message, file=sys.stderr, flush=True)


def apt_mirror():
    """The Debian mirror of this host's apt configuration (deb822 or one-line format)."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    candidates = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as handle:
            for stanza in re.split(r"\n\s*\n", handle.read()):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.+)$", stanza, re.M))
                if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes") != "no":
                    suites = fields.get("Suites", "").split()
                    if any(not s.endswith(("-security", "-updates", "-backports")) for s in suites):
                        candidates += fields.get("URIs", "").split()
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if os.path.exists(path):
            with open(path) as handle:
                for line in handle:
                    match = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                    if match and not match.group(2).endswith(("-security", "-updates", "-backports")):
                        candidates.append(match.group(1))
    for uri in candidates:
        if uri.startswith(("http://", "https://", "file:/")) and "security" not in uri:
            return uri
    sys.exit("images: no Debian mirror found in this host's apt configuration; set DEBIAN_MIRROR")


def image_exists(ref):
    return subprocess.run(["docker", "image", "inspect", ref], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def digest(*parts):
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part if isinstance(part, bytes) else part.encode())
    return sha.hexdigest()[:12]


def build_base(name, suite):
    mirror = apt_mirror()
    ref = "%s/%s:%s" % (REPOSITORY, name, digest("debootstrap minbase python3 ca-certificates", suite))
    if image_exists(ref):
        return ref
    rootfs = tempfile.mkdtemp(prefix="elms-rootfs-")
    try:
        log("debootstrap %s from %s (about a minute) ..." % (suite, mirror))
        subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,ca-certificates",
                        suite, rootfs, mirror], check=True, stdout=subprocess.DEVNULL)
        log("importing %s ..." % ref)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-", ref], stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            sys.exit("images: tar of the %s rootfs failed" % suite)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return ref


def build(name):
    suite, parent, dockerfile = IMAGES[name]
    if parent is None:
        ref = build_base(name, suite)
    else:
        parent_ref = build(parent)
        with open(os.path.join(IMAGES_DIR, dockerfile), "rb") as handle:
            content = handle.read()
        ref = "%s/%s:%s" % (REPOSITORY, name, digest(parent_ref, content))
        if not image_exists(ref):
            log("building %s ..." % ref)
            context = tempfile.mkdtemp(prefix="elms-image-")
            try:
                shutil.copy(os.path.join(IMAGES_DIR, dockerfile), os.path.join(context, "Dockerfile"))
                shutil.copy(CA_BUNDLE, os.path.join(context, "ca-bundle.crt"))
                # The classic builder resolves FROM against local images only; BuildKit
                # may try a registry, and none can be reached.
                env = dict(os.environ, DOCKER_BUILDKIT="0")
                subprocess.run(["docker", "build", "-q", "--build-arg", "BASE=%s" % parent_ref, "-t", ref, context],
                               check=True, env=env, stdout=subprocess.DEVNULL)
            finally:
                shutil.rmtree(context, ignore_errors=True)
    # Scenarios and the demo refer to the stable :latest tag.
    subprocess.run(["docker", "tag", ref, "%s/%s:latest" % (REPOSITORY, name)], check=True)
    return ref


def main(names):
    unknown = [name for name in names if name not in IMAGES]
    if not names or unknown:
        sys.exit("usage: images.py NAME [NAME ...] with names from: %s" % ", ".join(sorted(IMAGES)))
    for name in names:
        print(build(name))


if __name__ == "__main__":
    main(sys.argv[1:])
