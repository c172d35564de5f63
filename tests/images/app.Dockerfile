# The PHP host plus FFmpeg, for the scenarios that test supervisor layouts: there the
# ffmpeg role only verifies (it still encodes HLS for real). The default and debian13
# scenarios start from the PHP image and watch the role install FFmpeg itself.
ARG BASE
FROM ${BASE}
RUN DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg python3-venv
