"""Filter graphs are built from chains and spelt out once."""

from __future__ import annotations

import pytest

from agent.filtergraph import Chain, Graph


def test_a_chain_reads_inputs_applies_filters_in_order_and_writes_outputs() -> None:
    assert Chain(["0:v"], ["scale=2:2", "setsar=1"], ["v0"]).text() == \
        "[0:v]scale=2:2,setsar=1[v0]"
    assert Chain([], ["color=c=black:s=2x2"], ["c0"]).text() == "color=c=black:s=2x2[c0]"
    assert Chain(["a", "b"], ["overlay"], []).text() == "[a][b]overlay"
    with pytest.raises(ValueError):
        Chain(["a"], [], ["b"])


def test_labels_are_unique_per_graph_and_chains_keep_their_order() -> None:
    graph = Graph()
    first = graph.link(["0:v"], ["null"], "v")
    second = graph.link(["1:v"], ["null"], "v")
    assert (first, second) == ("v0", "v1")
    left, right = graph.add([first, second], ["hstack", "split"],
                            [graph.label("b"), graph.label("b")])
    graph.link([left], ["null"], "o")
    assert graph.text() == ("[0:v]null[v0];[1:v]null[v1];[v0][v1]hstack,split[b0][b1];"
                            "[b0]null[o0]")
    assert right == "b1"
    assert Graph().label("v") == "v0"  # another graph counts afresh


@pytest.mark.parametrize("hint", ["", "c1", "a]b"])
def test_hints_that_could_repeat_a_label_are_refused(hint: str) -> None:
    with pytest.raises(ValueError):
        Graph().label(hint)
