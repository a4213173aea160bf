"""A minimal writer of ONNX model files (protobuf wire format), so an ONNX Runtime graph can be
built at run time from weights already on disk without the ``onnx`` package (~60 MB with its
protobuf runtime) as a dependency.

Only what ``indexer.e5onnx`` needs: nodes with int/float/ints attributes, raw-data initialisers,
typed graph inputs and outputs, opset imports. Field numbers are those of ``onnx.proto``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import numpy as np

#: TensorProto.DataType values
FLOAT, UINT8, INT8, INT32, INT64 = 1, 2, 3, 6, 7
_DTYPES = {np.dtype(np.float32): FLOAT, np.dtype(np.uint8): UINT8, np.dtype(np.int8): INT8,
           np.dtype(np.int32): INT32, np.dtype(np.int64): INT64}


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else value
    return _key(field, 2) + _varint(len(data)) + data


def _float(field: int, value: float) -> bytes:
    return _key(field, 5) + struct.pack("<f", value)


def attribute(name: str, value: float | Sequence[int]) -> bytes:
    """An AttributeProto: INT (2), FLOAT (1) or INTS (7)."""
    if isinstance(value, bool | int):
        return _bytes(1, name) + _int(20, 2) + _int(3, int(value))
    if isinstance(value, float):
        return _bytes(1, name) + _int(20, 1) + _float(2, value)
    return _bytes(1, name) + _int(20, 7) + b"".join(_int(8, int(v)) for v in value)


def node(op: str, inputs: Iterable[str], outputs: Iterable[str], *, domain: str = "", **attrs: float | Sequence[int]) -> bytes:
    """A NodeProto (``domain`` "com.microsoft" for ONNX Runtime's contrib operators)."""
    body = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
    body += _bytes(4, op)
    body += b"".join(_bytes(5, attribute(k, v)) for k, v in attrs.items())
    if domain:
        body += _bytes(7, domain)
    return body


def tensor(name: str, array: np.ndarray) -> bytes:
    """A TensorProto holding ``array`` as little-endian raw data."""
    array = np.ascontiguousarray(array)
    dtype = _DTYPES[array.dtype]
    body = b"".join(_int(1, d) for d in array.shape) + _int(2, dtype) + _bytes(8, name)
    return body + _bytes(9, array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())


def value_info(name: str, elem_type: int, shape: Sequence[int | str]) -> bytes:
    """A ValueInfoProto: a tensor of ``elem_type`` whose dims are sizes or symbolic names."""
    dims = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _bytes(2, d)) for d in shape)
    tensor_type = _int(1, elem_type) + _bytes(2, dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def model(
    nodes: Iterable[bytes],
    initializers: Iterable[bytes],
    inputs: Iterable[bytes],
    outputs: Iterable[bytes],
    *,
    opsets: dict[str, int],
    name: str = "graph",
    ir_version: int = 9,
) -> bytes:
    """A serialised ModelProto, ready for ``onnxruntime.InferenceSession(bytes)``."""
    graph = b"".join(_bytes(1, n) for n in nodes) + _bytes(2, name)
    graph += b"".join(_bytes(5, t) for t in initializers)
    graph += b"".join(_bytes(11, v) for v in inputs) + b"".join(_bytes(12, v) for v in outputs)
    out = _int(1, ir_version) + _bytes(2, "tropegraph")
    out += _bytes(7, graph)
    out += b"".join(_bytes(8, _bytes(1, domain) + _int(2, version)) for domain, version in opsets.items())
    return out
