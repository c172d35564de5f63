# A Debian host as a container: systemd as PID 1, the way a real server boots.
# Runs unprivileged (see molecule/resources/platform): cgroupns host, /sys/fs/cgroup ro.
ARG BASE
FROM ${BASE}
ENV container=docker
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd systemd-sysv procps \
 && systemctl mask getty@tty1.service console-getty.service systemd-udevd.service systemd-logind.service \
 && rm -f /etc/machine-id && touch /etc/machine-id
# pip inside the container must trust the same CAs as its host.
COPY ca-bundle.crt /etc/ssl/host-ca-bundle.crt
RUN printf '[global]\ncert = /etc/ssl/host-ca-bundle.crt\n' > /etc/pip.conf
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]
