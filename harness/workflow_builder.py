"""Write a workflow once, get both formats: UI JSON (for the editor) and its API-format twin.

A workflow is described as nodes with *named* widget values (in the node's widget order) and
named links. The UI file stores widget values positionally, as the editor does; the tests convert
it back through the live host's /object_info (harness.workflows.ui_to_api) and require the result
to equal the API twin, which catches any widget-order mistake.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEED_WIDGETS = ("seed", "noise_seed")


@dataclass
class Node:
    id: int
    type: str
    widgets: dict = field(default_factory=dict)  # name -> value, in the node's widget order
    links: dict = field(default_factory=dict)  # input name -> (source node id, output slot, type)
    outputs: tuple = ()  # (name, type) of every output slot
    title: str | None = None


def to_api(nodes: list[Node]) -> dict:
    prompt = {}
    for node in nodes:
        inputs = dict(node.widgets)
        for name, (source, slot, _type) in node.links.items():
            inputs[name] = [str(source), slot]
        prompt[str(node.id)] = {"class_type": node.type, "inputs": inputs}
    return prompt


def to_ui(nodes: list[Node]) -> dict:
    links = []
    consumers: dict[tuple[int, int], list[int]] = {}
    ui_nodes = []
    for column, node in enumerate(nodes):
        inputs = []
        for name, (source, slot, kind) in node.links.items():
            link_id = len(links) + 1
            links.append([link_id, source, slot, node.id, len(inputs), kind])
            consumers.setdefault((source, slot), []).append(link_id)
            entry = {"name": name, "type": kind, "link": link_id}
            if name in node.widgets:
                entry["widget"] = {"name": name}
            inputs.append(entry)
        values = []
        for name, value in node.widgets.items():
            values.append(value)
            if name in SEED_WIDGETS:
                values.append("fixed")
        ui_nodes.append({
            "id": node.id, "type": node.type, "pos": [40 + 340 * column, 80 + 40 * (column % 2)],
            "size": [320, 60 + 26 * (len(values) + len(inputs))], "flags": {}, "order": column,
            "mode": 0, "inputs": inputs, "outputs": [], "properties": {"Node name for S&R": node.type},
            "widgets_values": values, **({"title": node.title} if node.title else {}),
        })
    for ui_node, node in zip(ui_nodes, nodes):
        ui_node["outputs"] = [
            {"name": name, "type": kind, "links": consumers.get((node.id, slot), []), "slot_index": slot}
            for slot, (name, kind) in enumerate(node.outputs)
        ]
    return {
        "last_node_id": max(n.id for n in nodes), "last_link_id": len(links), "nodes": ui_nodes,
        "links": links, "groups": [], "config": {}, "extra": {}, "version": 0.4,
    }
