"""Every reserved log-key id, once.

A log key is a positive integer the parser gives to a template (1, 2, ...). The ids at or below zero
are reserved, each for one meaning, everywhere in the package (entries, sessions, reports, the
journal, workflows):

========  ======================================================================================
``0``     :data:`UNKNOWN` - a parsed line whose template was never seen in training
``-1``    :data:`UNPARSED` - a line that did not fit the log format
``-2``    :data:`END` - the end of a session: the key model predicts it after the last key, a
          workflow's paths stop there
``-3``    :data:`OUT_OF_VOCABULARY` - a key the key model's vocabulary does not hold (a key file's
          id, or a key learned after the model was trained)
``-4``    :data:`PAD` - left padding before the first key of a session
========  ======================================================================================

A workflow state, a template and a vocabulary entry are always a key above zero.
"""

from __future__ import annotations

__all__ = ["END", "OUT_OF_VOCABULARY", "PAD", "RESERVED", "UNKNOWN", "UNPARSED", "is_template_key"]

UNKNOWN = 0
UNPARSED = -1
END = -2
OUT_OF_VOCABULARY = -3
PAD = -4

#: Every reserved id with its name, for messages and checks.
RESERVED: dict[int, str] = {
    UNKNOWN: "unknown template",
    UNPARSED: "unparsed line",
    END: "end of session",
    OUT_OF_VOCABULARY: "not in the model's vocabulary",
    PAD: "padding",
}


def is_template_key(key: int) -> bool:
    """True for a key that names a template (above zero), False for every reserved id."""
    return int(key) > 0
