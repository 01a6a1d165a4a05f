"""Small JSON files on flash (config, log state, time offsets), safe against power cuts.

``save`` writes a temporary file and renames it over the old one, so a power cut
leaves the old file or the new one, never half of one. Where the filesystem
cannot rename over a file (FAT), the old file is removed first; a cut between the
two steps leaves only the temporary file, which ``load`` then reads.
"""

import json


def save(board, name, obj):
    tmp = name + ".tmp"
    f = board.open(tmp, "w")
    try:
        f.write(json.dumps(obj))
    finally:
        f.close()
    try:
        board.rename(tmp, name)
    except OSError:  # FAT will not rename over an existing file
        board.remove(name)
        board.rename(tmp, name)


def load(board, name, check=None):
    """The object in ``name`` (or its temporary file), or None.

    A file that cannot be read, is not a JSON object, or fails ``check(obj)`` is
    logged and skipped.
    """
    for n in (name, name + ".tmp"):
        if not board.exists(n):
            continue
        try:
            f = board.open(n, "r")
            try:
                d = json.loads(f.read())
            finally:
                f.close()
            if isinstance(d, dict) and (check is None or check(d)):
                return d
        except (OSError, ValueError):
            pass
        board.log("%s unreadable, ignored" % n)
    return None
