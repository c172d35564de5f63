"""Make `ansible_collections.elms.queue_workers` importable for plain pytest runs.

`make unit` runs pytest from the checkout's link under
.build/collections/ansible_collections/elms/queue_workers (or ANSIBLE_COLLECTIONS_PATH).
`ansible-test units` installs its own collection finder (with pytest's assertion
rewriting hooked into it) before this file is loaded; that one is kept.
"""

import os

from ansible.utils.collection_loader import AnsibleCollectionConfig
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder


def _collection_roots():
    here = os.path.abspath(os.path.dirname(__file__))
    parts = here.split(os.sep)
    if "ansible_collections" in parts:
        yield os.sep.join(parts[:len(parts) - parts[::-1].index("ansible_collections") - 1])
    for path in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep):
        if path:
            yield path


if AnsibleCollectionConfig.collection_finder is None:
    _AnsibleCollectionFinder(paths=list(_collection_roots()))._install()
