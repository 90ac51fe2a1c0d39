"""Every Lua script the engine runs: a file beside this module, loaded once per client.

Each script's header lists its KEYS and ARGV. Scripts receive every key they touch as KEYS
(built by ``workers/keys.py``), so a script stays a single-slot call on a Redis Cluster. The one
derived name: a due-index bucket, ``<due key> .. ':' .. <bucket>`` (``commit.lua``,
``due_release.lua``), which only the script can know and which ``Keys.due_bucket`` builds the
same way (``tests/test_lua.py`` holds them to it); it carries the shard's hash tag, so it is in
the same slot.

``script(r, name)`` registers a script once per client (like Dramatiq's ``dispatch.lua``): the
client sends EVALSHA and loads the text only when the server does not know it yet.
"""

from __future__ import annotations

import weakref
from functools import cache
from importlib.resources import files

from redis.commands.core import Script

from workers.redisconn import Redis

_registered: weakref.WeakKeyDictionary[Redis, dict[str, Script]] = weakref.WeakKeyDictionary()


@cache
def source(name: str) -> str:
    """The text of ``workers/lua/<name>.lua``."""
    return files("workers.lua").joinpath(f"{name}.lua").read_text()


def script(r: Redis, name: str) -> Script:
    """The script ``name`` registered with this client (registered on first use)."""
    scripts = _registered.get(r)
    if scripts is None:
        scripts = _registered[r] = {}
    found = scripts.get(name)
    if found is None:
        found = scripts[name] = r.register_script(source(name))
    return found
