"""A conversion-time rewrite of full-integer TFLite graphs, so XNNPACK takes them whole.

In Xception-style networks a residual ADD feeds both the next ADD and a ReLU
that starts the next block. The converter cannot fuse that ReLU into the ADD
(the ADD's output has two readers), so it stays a standalone int8 RELU whose
output scale differs from its input's. LiteRT's XNNPACK delegate takes RELU in
float only, so each such RELU runs on the built-in kernels between two XNNPACK
partitions (the 299x299 Xception: 11 RELUs, 12 partitions).

`fuse_relu_into_add` replaces each such RELU by a second ADD of the same two
inputs with the ReLU fused into it, written straight at the RELU's output scale.
XNNPACK runs int8 ADD with a fused activation, so the graph becomes one
partition. The result is the same function with one rounding fewer (the sum is
requantized once, not twice); the extra ADD costs as little as the RELU did.
"""

from __future__ import annotations

import copy

import flatbuffers

# standalone activation op -> the fused activation that replaces it
_FUSABLE = {"RELU": "RELU", "RELU6": "RELU6"}
_QUANTIZED = ("INT8", "UINT8")


def fuse_relu_into_add(flatbuffer: bytes) -> tuple[bytes, int]:
    """Fold each quantized RELU/RELU6 that reads an activation-free ADD into a copy of that ADD.

    Returns:
        The rewritten flatbuffer (unchanged bytes when nothing matched) and how many RELUs were folded.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    op_names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    activations = {name: value for name, value in vars(schema.ActivationFunctionType).items()
                   if not name.startswith("_")}
    types = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    codes = [op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode)) for code in model.operatorCodes]
    folded = 0
    for subgraph in model.subgraphs:
        writer = {tensor: op for op in subgraph.operators for tensor in op.outputs}
        copied = []
        for position, op in enumerate(subgraph.operators):
            fused = _FUSABLE.get(codes[op.opcodeIndex])
            add = writer.get(op.inputs[0]) if fused else None
            if add is None or codes[add.opcodeIndex] != "ADD" or add.builtinOptions is None:
                continue
            if add.builtinOptions.fusedActivationFunction != activations["NONE"]:
                continue
            if any(types.get(subgraph.tensors[t].type) not in _QUANTIZED for t in (op.inputs[0], op.outputs[0])):
                continue
            replacement = copy.deepcopy(add)
            replacement.outputs = list(op.outputs)
            replacement.builtinOptions.fusedActivationFunction = activations[fused]
            subgraph.operators[position] = replacement
            copied.append(add)
            folded += 1
        # an ADD whose only reader was the RELU is now dead: drop it
        read = {tensor for op in subgraph.operators for tensor in op.inputs} | set(subgraph.outputs)
        dead = [id(add) for add in copied if not any(tensor in read for tensor in add.outputs)]
        subgraph.operators = [op for op in subgraph.operators if id(op) not in dead]
    if not folded:
        return flatbuffer, 0
    builder = flatbuffers.Builder(len(flatbuffer) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), folded
