"""An ffmpeg ``-filter_complex`` graph, built from chains and joined once.

A chain reads some links (or inputs such as ``0:v``), applies filters in
order and writes some links: ``[a][b]overlay=x=0:y=0,format=rgb24[c]``.
The graph hands out link labels that are unique within it, so callers
never name a link twice, and nothing is spelt out until :meth:`Graph.text`.
"""

from typing import Dict, List, Sequence  # noqa: F401 (type comments)


class Chain(object):
    """Filters applied in order, from ``inputs`` to ``outputs`` (labels, without brackets)."""

    __slots__ = ("inputs", "filters", "outputs")

    def __init__(self, inputs, filters, outputs):
        # type: (Sequence[str], Sequence[str], Sequence[str]) -> None
        if not filters:
            raise ValueError("a filter chain needs at least one filter")
        self.inputs = list(inputs)
        self.filters = list(filters)
        self.outputs = list(outputs)

    def text(self):
        # type: () -> str
        return "%s%s%s" % ("".join("[%s]" % label for label in self.inputs),
                           ",".join(self.filters),
                           "".join("[%s]" % label for label in self.outputs))


class Graph(object):
    """Chains in the order they were added, and the labels handed out for their links."""

    def __init__(self):
        # type: () -> None
        self.chains = []  # type: List[Chain]
        self._counts = {}  # type: Dict[str, int]

    def label(self, hint):
        # type: (str) -> str
        """A new link label: ``hint`` followed by how many were asked for before.

        ``hint`` must not end in a digit, so no two hints can make the same label.
        """
        if not hint or hint[-1].isdigit() or "[" in hint or "]" in hint:
            raise ValueError("a label hint must not be empty, end in a digit or hold brackets")
        number = self._counts.get(hint, 0)
        self._counts[hint] = number + 1
        return "%s%d" % (hint, number)

    def add(self, inputs, filters, outputs):
        # type: (Sequence[str], Sequence[str], Sequence[str]) -> List[str]
        """Append a chain; returns its output labels."""
        chain = Chain(inputs, filters, outputs)
        self.chains.append(chain)
        return chain.outputs

    def link(self, inputs, filters, hint):
        # type: (Sequence[str], Sequence[str], str) -> str
        """Append a chain with one output, a new label from ``hint``, and return that label."""
        return self.add(inputs, filters, [self.label(hint)])[0]

    def text(self):
        # type: () -> str
        """The graph as ``-filter_complex`` takes it."""
        return ";".join(chain.text() for chain in self.chains)
