#!/usr/bin/env python3
"""Writes passwords-1001.txt: the dictionary of the password-guessing test.

Deterministic (no randomness): 500 lines, every one a wrong password for account 1001 except
line 496, which holds 1001's real password (LAB.md). The wrong ones are what a guessing run
tries first: the extension itself, digits, keyboard walks, common words with the usual
suffixes, and, just before the real one, near misses of it (one character off), so that a
gateway leaking partial matches would show. Run: python3 tests/attacks/make_dictionary.py
"""
import pathlib

RIGHT = "Kj9#mNp2xQ&vL5sW!aR7cYz3"  # LAB.md, account 1001
TOTAL = 500
RIGHT_LINE = 496  # 1-based: near the end, four wrong ones after it

words = [
    "password", "secret", "admin", "voip", "sip", "asterisk", "phone", "welcome",
    "letmein", "qwerty", "changeme", "default", "freepbx", "pbx", "trunk", "office",
    "master", "monkey", "dragon", "sunshine", "lab", "test", "guest", "user",
]
suffixes = ["", "1", "12", "123", "1234", "!", "2023", "2024", "2025", "1001", "@1001", "#1"]


def wrong():
    yield from ["1001", "10011001", "1001a", "a1001", "1100", "0000", "1111", "1234",
                "12345", "123456", "1234567", "12345678", "123456789", "000000", "111111",
                "654321", "987654321", "qwertyuiop", "asdfghjkl", "zxcvbnm", "1q2w3e4r",
                "1qaz2wsx", "q1w2e3r4", "abc123", "iloveyou"]
    for w in words:
        for s in suffixes:
            yield w + s
            yield w.capitalize() + s
    for n in range(1000, 1100):
        yield str(n) * 2


def near_misses():
    yield RIGHT[:-1] + "4"             # last character off
    yield RIGHT.lower()                # case
    yield RIGHT[1:]                    # first character missing
    yield RIGHT + "!"                  # one too many
    yield RIGHT.replace("#", "$")      # one symbol off


def main():
    seen, lines = {RIGHT}, []
    for p in wrong():
        if p not in seen:
            seen.add(p)
            lines.append(p)
    before = RIGHT_LINE - 1 - 5
    tail = list(near_misses())
    lines = lines[:before] + tail[:5] + [RIGHT] + lines[before:before + TOTAL - RIGHT_LINE]
    assert len(lines) == TOTAL and lines[RIGHT_LINE - 1] == RIGHT and lines.count(RIGHT) == 1
    out = pathlib.Path(__file__).with_name("passwords-1001.txt")
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
