# A Debian 13 controller with the newest ansible-core (Python 3.13): what the newest_core
# scenario runs ansible-test and the playbooks with. The docker CLI and socket come from
# the host at run time (the docker connection reaches the target container through them).
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv git \
 && rm -rf /var/lib/apt/lists/*
# pip inside the container must trust the same CAs as its host.
COPY ca-bundle.crt /etc/ssl/host-ca-bundle.crt
RUN printf '[global]\ncert = /etc/ssl/host-ca-bundle.crt\n' > /etc/pip.conf
# The newest release of each, checked by hand before it is pinned here: ansible 14 brings
# community.docker for the connection; ansible-test makes its own venvs for sanity and units.
RUN python3 -m venv /opt/ansible \
 && /opt/ansible/bin/pip install -q --no-cache-dir ansible-core==2.21.5 ansible==14.5.0
ENV PATH=/opt/ansible/bin:$PATH
