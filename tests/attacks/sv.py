#!/usr/bin/env python3
"""Runs SIPVicious 0.3.3 from Debian's package (svwar or svcrack) with its -b option honoured.

    python3 tests/attacks/sv.py svcrack -b 127.0.0.66 -u 1001 -d dict.txt udp://127.0.0.1:5060

svwar's and svcrack's main() parse -b/--bindingip but never pass it on (svmap does), so they
bind 0.0.0.0 and the kernel sends from 127.0.0.1, the gateway's own address, from which the lab's
local phones send. This wrapper runs the packaged tool unchanged except that the -b value reaches its socket, so that the attack comes
from the attacker's address (127.0.0.66 and up). Nothing else of the tool is touched.
"""
import importlib
import sys

sys.path.insert(0, "/usr/share/sipvicious")

TOOLS = {"svwar": "TakeASip", "svcrack": "ASipOfRedWine"}


def bindingip(argv):
    for i, a in enumerate(argv):
        if a in ("-b", "--bindingip") and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--bindingip="):
            return a.split("=", 1)[1]
    return ""


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in TOOLS:
        sys.exit("usage: sv.py svwar|svcrack [tool options]")
    tool = sys.argv.pop(1)
    mod = importlib.import_module("sipvicious." + tool)
    cls = getattr(mod, TOOLS[tool])
    bind = bindingip(sys.argv[1:])
    original = cls.__init__

    def init(self, *args, **kwargs):
        kwargs.setdefault("bindingip", bind)
        original(self, *args, **kwargs)

    cls.__init__ = init
    sys.argv[0] = tool
    mod.main()


if __name__ == "__main__":
    main()
