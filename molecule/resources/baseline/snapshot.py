"""What the checks compare before and after the deploys; runs on the test host.

    python3 snapshot.py SUPERVISORCTL CONFIG [GLOB...]

Prints JSON: supervisord's pid and start time (clock ticks after boot, field 22 of
/proc/PID/stat: a restart changes it even if the pid comes back), every program's state
and pid from supervisorctl status (a reload keeps supervisord's pid but restarts them
all), and the sha256 of every file the [include] globs match that the collection did not
write (its files start with its marker line). prepare.yml records it as the baseline;
the checks run it again and compare.
"""

import glob
import hashlib
import json
import os
import subprocess
import sys

# Every marker of this collection: OWNER (earlier versions) or OWNER/APP.
MARKER = b"; Managed by Ansible (elms.queue_workers"


def supervisorctl(ctl, *args):
    done = subprocess.run(list(ctl) + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)
    return done.stdout


def programs(ctl):
    """{process: {"state": ..., "pid": ...}} from supervisorctl status (pid null unless running)."""
    found = {}
    for line in supervisorctl(ctl, "status").splitlines():
        fields = line.split()
        if len(fields) >= 2:
            pid = int(fields[3].rstrip(",")) if len(fields) > 3 and fields[2] == "pid" else None
            found[fields[0]] = {"state": fields[1], "pid": pid}
    return found


def supervisord(ctl):
    pid = int(supervisorctl(ctl, "pid").strip())
    with open("/proc/%d/stat" % pid, encoding="ascii") as stat:
        # comm (field 2) may hold spaces and parentheses: count from its closing one.
        start_time = int(stat.read().rsplit(")", 1)[1].split()[19])
    return {"pid": pid, "start_time": start_time}


def files_of_others(patterns):
    found = {}
    for pattern in patterns:
        for path in sorted(p for p in glob.glob(pattern) if os.path.isfile(p)):
            with open(path, "rb") as program_file:
                content = program_file.read()
            if not content.startswith(MARKER):
                found[path] = hashlib.sha256(content).hexdigest()
    return found


def main(argv):
    ctl = (argv[1], "-c", argv[2])
    print(json.dumps({"supervisord": supervisord(ctl), "programs": programs(ctl),
                      "files": files_of_others(argv[3:])}, indent=2, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv)
