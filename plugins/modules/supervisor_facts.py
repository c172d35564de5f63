#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: supervisor_facts
short_description: Detect the live supervisord, its config file and where it loads program files from
version_added: "0.1.0"
description:
  - Finds the running C(supervisord) from C(/proc) (also when it runs under a Python interpreter or
    as C(python -m supervisor.supervisord)), reads its config file from its command line the way
    supervisord parses it (C(-c FILE), C(-cFILE), C(--configuration=FILE), C(--configuration FILE),
    unambiguous long-option prefixes), falls back to supervisord's own search order, and expands
    the C([include] files) globs with C(%(here)s), C(%(host_node_name)s) and C(%(ENV_X)s) taken from
    the process's own environment.
  - Picks the include directory and file extension from the first glob of the form C(DIR/*.EXT).
  - Never changes anything. Always returns every key of C(ansible_facts.supervisor); unknown values
    are C(null) or empty, and C(problems) says what could not be worked out and how to fix it.
  - Fails only when several supervisord processes with different config files run and
    O(config_file) does not say which one to use.
author:
  - eLMS infrastructure team (@elms-platform)
options:
  config_file:
    description:
      - Use this supervisord config file instead of detecting it.
      - With several supervisord processes, selects the one started with this file.
    type: path
  supervisorctl_path:
    description:
      - The supervisorctl to use. By default the one beside the running supervisord, then C(PATH).
    type: path
  include_dir:
    description:
      - Put program files in this directory instead of the first C(DIR/*.EXT) include glob.
      - It must be loaded by the config's C([include] files); requires O(include_extension).
    type: path
  include_extension:
    description:
      - File extension for program files, with or without the leading dot. Requires O(include_dir).
    type: str
extends_documentation_fragment:
  - elms.queue_workers.read_only
attributes:
  facts:
    support: full
    description: Returns C(ansible_facts.supervisor).
notes:
  - Processes in another mount namespace (containers seen from their host) are ignored.
  - Only supervisord reads C([include]); supervisorctl must be called with C(-c CONFIG) to reach
    the same server, which RV(ansible_facts.supervisor.supervisorctl_path) and
    RV(ansible_facts.supervisor.config_file) together allow.
"""

EXAMPLES = r"""
- name: Detect supervisor
  elms.queue_workers.supervisor_facts:

- name: Show where program files go
  ansible.builtin.debug:
    msg: "{{ ansible_facts.supervisor.include_dir }}/NAME{{ ansible_facts.supervisor.include_extension }}"

- name: Several supervisords run on this host; manage the panel's one
  elms.queue_workers.supervisor_facts:
    config_file: /etc/supervisor/supervisord.conf
"""

RETURN = r"""
ansible_facts:
  description: Facts about the supervisord that manages this host's programs.
  returned: always
  type: dict
  contains:
    supervisor:
      description: The detected layout.
      returned: always
      type: dict
      contains:
        running:
          description: Whether a supervisord process with this config runs.
          type: bool
          returned: always
        pid:
          description: Its process id, or null.
          type: int
          returned: always
        supervisord_path:
          description: The supervisord script or binary (absolute), or null.
          type: str
          returned: always
        supervisorctl_path:
          description: The supervisorctl to use, or null when none was found.
          type: str
          returned: always
        config_file:
          description: Absolute path of the config file, or null.
          type: str
          returned: always
        config_file_exists:
          description: Whether the config file exists.
          type: bool
          returned: always
        config_source:
          description: How the config was found, C(argv), C(search) or C(option); null when not found.
          type: str
          returned: always
        include_globs:
          description: The C([include] files) globs, expanded and absolute, in file order.
          type: list
          elements: str
          returned: always
        include_dir:
          description: Where program files go, or null.
          type: str
          returned: always
        include_dir_exists:
          description: Whether O(include_dir) exists yet (some packages do not create it).
          type: bool
          returned: always
        include_extension:
          description: Program file extension with the leading dot, or null.
          type: str
          returned: always
        server_url:
          description: The URL supervisorctl reaches with this config.
          type: str
          returned: always
        platform:
          description: Layout name, one of C(debian), C(rhel), C(alpine), C(aapanel), C(plesk), C(pip), C(unknown).
          type: str
          returned: always
        version:
          description: supervisor's version, or null.
          type: str
          returned: always
        processes:
          description: Every supervisord process seen, with its pid, parent pid, command line and config.
          type: list
          elements: dict
          returned: always
        service_name:
          description: The systemd unit that runs this supervisord (from its cgroup), or null.
          type: str
          returned: always
        chosen_because:
          description: Why this supervisord and config were chosen.
          type: str
          returned: always
        problems:
          description: What could not be worked out, each with the fix.
          type: list
          elements: str
          returned: always
        service_enabled:
          description: Whether the systemd unit is enabled at boot; null when unknown (no systemd, no unit).
          type: bool
          returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_detect


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_file=dict(type="path"),
            supervisorctl_path=dict(type="path"),
            include_dir=dict(type="path"),
            include_extension=dict(type="str"),
        ),
        required_together=[("include_dir", "include_extension")],
        supports_check_mode=True,
    )
    facts = supervisor_detect.detect(module)
    module.exit_json(changed=False, ansible_facts={"supervisor": facts})


if __name__ == "__main__":
    main()
