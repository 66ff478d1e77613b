"""The parser's plain-JSON state: what :meth:`LogParser.to_state` writes and
:meth:`LogParser.from_state` reads back, and the checks that make loading safe.

Schema (``state_version`` 2): ``format`` (the line format), ``max_line_bytes``,
``max_word_values``, ``drain`` (Drain's settings, every cluster as ``[id, size, tokens]``, the
cluster counter, and the prefix tree as nested ``[cluster_ids, {token: child}]``), ``keys``
(``[key, cluster, [[position, word], ...]]``; a cluster below 0 marks a retired key id that is never
given again), ``words``, ``counts``, ``feedback_clusters``, ``cache`` (masked message -> cluster, so
matching after a load is the same as before), ``refine`` (see :func:`refine_state`), and, when the
parser carries them, ``year`` and ``session_rule`` (the text :meth:`SessionRule.parse` reads);
``named_numbers`` is true when the number of a ``name=value`` token (``ms=943``) is a parameter,
and absent in a state written before it was (whose parameter vectors keep their length).

Only strings, numbers, lists and dicts are written, nothing that names a class; every value read
is checked for its type, so a crafted state can fail to load but never makes anything run.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from drain3.drain import Drain, LogCluster, Node

from workbench.logs.formats import LogFormat
from workbench.logs.word_stats import VARIABLE

if TYPE_CHECKING:
    from workbench.logs.parser import LogParser

__all__ = ["STATE_VERSION", "load_refine_state", "parser_from_state", "parser_to_state"]

#: Version of the plain-JSON parser state written by :func:`parser_to_state`.
STATE_VERSION = 2

_PREFIX = "malformed parser state"


def need(obj: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """``obj`` when it is of type ``kind`` (a bool is no number), else ValueError naming ``what``."""
    if isinstance(obj, bool) and kind in (int, float, (int, float)):
        raise ValueError(f"{_PREFIX}: {what} must be a number, got {obj!r}")
    if not isinstance(obj, kind):
        raise ValueError(f"{_PREFIX}: {what} has the wrong type ({type(obj).__name__})")
    return obj


# ---------------------------------------------------------------------- writing
def parser_to_state(parser: LogParser) -> dict[str, Any]:
    """The plain-JSON state of ``parser`` (the schema of this module)."""
    state: dict[str, Any] = {
        "state_version": STATE_VERSION,
        "format": parser.format.to_dict(),
        "max_line_bytes": parser.max_line_bytes,
        "max_word_values": parser.max_word_values,
        "drain": _drain_state(parser.drain_),
        "counts": {str(k): int(v) for k, v in sorted(parser.counts_.items())},
        "feedback_clusters": sorted(int(c) for c in parser.feedback_clusters_),
        "keys": [
            [int(k), int(cid), [[int(p), str(v)] for p, v in fixed]]
            for k, (cid, fixed) in sorted(parser.keys_.items())
        ],
        "words": [
            [int(cid), int(pos), None if vals is VARIABLE else sorted(str(v) for v in vals)]
            for cid, d_ in parser.word_stats_.positions.items()
            for pos, vals in d_.items()
        ],
        "cache": [[str(m), int(c)] for m, c in parser._cache.items()],
        "refine": refine_state(parser),
    }
    if parser.year is not None:
        state["year"] = int(parser.year)
    if parser.session_rule is not None:
        state["session_rule"] = str(parser.session_rule)
    if parser.named_numbers:  # absent: a state as written before (the same bytes back)
        state["named_numbers"] = True
    return state


def _drain_state(d: Drain) -> dict[str, Any]:
    def tree(node: Any) -> list[Any]:
        return [
            [int(c) for c in node.cluster_ids],
            {str(t): tree(child) for t, child in node.key_to_child_node.items()},
        ]

    clusters = [
        [int(c.cluster_id), int(c.size), [str(t) for t in c.log_template_tokens]]
        for c in sorted(d.id_to_cluster.values(), key=lambda c: c.cluster_id)
    ]
    return {
        "depth": int(d.log_cluster_depth),
        "sim_th": float(d.sim_th),
        "max_children": int(d.max_children),
        "param_str": str(d.param_str),
        "extra_delimiters": [str(x) for x in d.extra_delimiters],
        "parametrize_numeric_tokens": bool(d.parametrize_numeric_tokens),
        "clusters_counter": int(d.clusters_counter),
        "clusters": clusters,
        "tree": tree(d.root_node),
    }


def refine_state(parser: LogParser) -> dict[str, Any]:
    """The refinement's learned state as plain JSON-able data (see :func:`load_refine_state`).

    ``aliases``: [key, cluster, [[pos, word], ...]] for every cluster merged into a key;
    ``signatures``: [[token, ...], key] skeletons; ``word_owners``: word -> clusters;
    ``affixes``: [cluster, position, common prefix, common suffix, shortest length] of the
    values at a wildcard (its ``key=`` and punctuation are kept around the ``<*>``); ``mixed``:
    [cluster, [position, ...]] of clusters whose members are keyed by their own skeleton.
    """
    stats = parser.word_stats_
    return {
        "merge": parser.merge,
        "aliases": [
            [k, cid, [list(f) for f in fixed]]
            for k, members in sorted(parser.key_aliases_.items())
            for cid, fixed in members
        ],
        "signatures": [[list(sig), k] for sig, k in parser.key_signatures_.items()],
        "word_owners": {w: list(c) for w, c in stats.owners.items()},
        "affixes": [
            [cid, pos, *affix] for cid, d in stats.affixes.items() for pos, affix in d.items()
        ],
        "mixed": [[cid, list(pos)] for cid, pos in stats.mixed.items()],
    }


# ---------------------------------------------------------------------- reading
def parser_from_state(cls: type[LogParser], state: dict[str, Any]) -> LogParser:
    """Rebuild a parser of class ``cls`` from :func:`parser_to_state`'s output through drain3's
    own classes; ValueError naming the field when the state is malformed."""
    need(state, dict, "the state")
    version = state.get("state_version")
    if version != STATE_VERSION or isinstance(version, bool):
        raise ValueError(
            f"{_PREFIX}: state_version {version!r} is not "
            f"{STATE_VERSION} (written by another version of the package)"
        )
    try:
        parser = cls(
            LogFormat.from_dict(need(state["format"], dict, "format")),
            max_line_bytes=need(state["max_line_bytes"], int, "max_line_bytes"),
            max_word_values=need(state["max_word_values"], int, "max_word_values"),
        )
        # a state written before name=value numbers were parameters keeps its vectors' length
        parser.named_numbers = need(state.get("named_numbers", False), bool, "named_numbers")
        drain = _read_drain(need(state["drain"], dict, "drain"), parser._new_drain())
        _read_keys(parser, state)
        _read_learned(parser, state)
    except KeyError as exc:
        raise ValueError(f"{_PREFIX}: field {exc} is missing") from exc
    except (TypeError, ValueError) as exc:
        if str(exc).startswith(_PREFIX):
            raise
        raise ValueError(f"{_PREFIX}: {exc}") from exc
    parser.drain_ = drain
    return parser


def _read_drain(ds: dict[str, Any], drain: Drain) -> Drain:
    """Drain's settings, clusters and prefix tree, checked, into ``drain``."""
    drain.log_cluster_depth = need(ds["depth"], int, "drain.depth")
    drain.max_node_depth = drain.log_cluster_depth - 2
    drain.sim_th = float(need(ds["sim_th"], (int, float), "drain.sim_th"))
    drain.max_children = need(ds["max_children"], int, "drain.max_children")
    drain.param_str = need(ds["param_str"], str, "drain.param_str")
    drain.extra_delimiters = tuple(
        need(x, str, "drain.extra_delimiters") for x in ds["extra_delimiters"]
    )
    drain.parametrize_numeric_tokens = need(
        ds["parametrize_numeric_tokens"], bool, "drain.parametrize_numeric_tokens"
    )
    for item in need(ds["clusters"], list, "drain.clusters"):
        cid, size, tokens = need(item, list, "drain cluster")
        tokens = [need(t, str, "cluster token") for t in need(tokens, list, "tokens")]
        cluster = LogCluster(tokens, need(cid, int, "cluster id"))
        cluster.size = need(size, int, "cluster size")
        drain.id_to_cluster[cluster.cluster_id] = cluster
    drain.clusters_counter = max(
        need(ds["clusters_counter"], int, "drain.clusters_counter"),
        max(drain.id_to_cluster, default=0),
    )
    drain.root_node = _read_node(ds["tree"], 0, drain)
    return drain


def _read_node(item: Any, depth: int, drain: Drain) -> Node:
    """One node of the prefix tree, its children read recursively (never deeper than Drain's)."""
    if depth > drain.log_cluster_depth + 2:
        raise ValueError(f"{_PREFIX}: the prefix tree is too deep")
    ids, children = need(item, list, "tree node")
    n = Node()
    for c in need(ids, list, "tree cluster ids"):
        if need(c, int, "tree cluster id") not in drain.id_to_cluster:
            raise ValueError(f"{_PREFIX}: the tree names cluster {c}")
        n.cluster_ids.append(c)
    for tok, child in need(children, dict, "tree children").items():
        n.key_to_child_node[tok] = _read_node(child, depth + 1, drain)
    return n


def _read_keys(parser: LogParser, state: dict[str, Any]) -> None:
    """The key vocabulary: key id -> (cluster, fixed words); retired ids match nothing."""
    for item in need(state["keys"], list, "keys"):
        k, cid, fixed = need(item, list, "key")
        fixed_t = tuple(
            (need(p, int, "key position"), need(v, str, "key word"))
            for p, v in need(fixed, list, "key words")
        )
        key = (need(cid, int, "key cluster"), fixed_t)
        parser.keys_[need(k, int, "key id")] = key
        if key[0] >= 0:  # a retired key id keeps its number and matches nothing
            parser._keymap[key] = k


def _read_learned(parser: LogParser, state: dict[str, Any]) -> None:
    """Feedback clusters, word statistics, counts, the match cache, the refinement, the session
    rule and the year."""
    from workbench.logs.sessions import SessionRule

    parser.feedback_clusters_ = {
        need(c, int, "feedback cluster")
        for c in need(state.get("feedback_clusters", []), list, "feedback_clusters")
    }
    for item in need(state["words"], list, "words"):
        cid, pos, vals = need(item, list, "word stats")
        parser.word_stats_.positions.setdefault(need(cid, int, "word cluster"), {})[
            need(pos, int, "word position")
        ] = VARIABLE if vals is None else {need(v, str, "word") for v in need(vals, list, "words")}
    parser.counts_ = Counter(
        {
            int(k): need(v, int, "count")
            for k, v in need(state.get("counts", {}), dict, "counts").items()
        }
    )
    for item in need(state.get("cache", []), list, "cache"):
        m, c = need(item, list, "cache entry")
        parser._cache[need(m, str, "cached message")] = need(c, int, "cached cluster")
    load_refine_state(parser, need(state.get("refine", {}), dict, "refine"))
    rule = state.get("session_rule")
    if rule is not None:
        parser.session_rule = SessionRule.parse(need(rule, str, "session_rule"))
    year = state.get("year")
    if year is not None:
        parser.year = need(year, int, "year")


def load_refine_state(parser: LogParser, state: dict[str, Any]) -> None:
    """Restore what :func:`refine_state` returned (after ``keys_`` and the word positions)."""
    parser.merge = bool(state.get("merge", True))
    for k, cid, fixed in state.get("aliases", []):
        member = (int(cid), tuple((int(p), str(v)) for p, v in fixed))
        parser.key_aliases_.setdefault(int(k), []).append(member)
        parser._keymap[member] = int(k)
    for sig, k in state.get("signatures", []):
        parser.key_signatures_[tuple(str(t) for t in sig)] = int(k)
    stats = parser.word_stats_
    stats.owners = {
        str(w): [int(c) for c in cids] for w, cids in state.get("word_owners", {}).items()
    }
    for cid, pos, prefix, suffix, shortest in state.get("affixes", []):
        affix = [str(prefix), str(suffix), int(shortest)]
        stats.affixes.setdefault(int(cid), {})[int(pos)] = affix
    for cid, pos in state.get("mixed", []):
        stats.mixed[int(cid)] = [int(p) for p in pos]
