"""The GraphDef-writing helpers both TensorFlow stand-ins share: AttrValue constructors and node adding."""

from __future__ import annotations

from typing import Iterable

import numpy as np


class GraphDefWriter:
    """A ``tf.compat.v1.GraphDef`` under construction, with the AttrValue shapes TF 1.x graphs use."""

    def __init__(self) -> None:
        import tensorflow as tf

        self.tf = tf
        self.gd = tf.compat.v1.GraphDef()

    def _a(self, **kw):
        return self.tf.compat.v1.AttrValue(**kw)

    def type_(self, dtype=None):
        return self._a(type=(dtype or self.tf.float32).as_datatype_enum)

    def ints(self, values: Iterable[int]):
        return self._a(list=self.tf.compat.v1.AttrValue.ListValue(i=list(values)))

    def cls(self, var: str):
        """The ``_class`` colocation attr (``loc:@<var>``) TF puts on a variable's ops."""
        return self._a(list=self.tf.compat.v1.AttrValue.ListValue(s=[f"loc:@{var}".encode()]))

    def shape(self, dims: Iterable[int]):
        from tensorflow.core.framework.tensor_shape_pb2 import TensorShapeProto

        return self._a(shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=d) for d in dims]))

    def add_node(self, name: str, op: str, inputs: Iterable[str] = (), **attrs) -> str:
        """Append a node with ``attrs`` (AttrValues, in the order given); return its name."""
        n = self.gd.node.add(name=name, op=op)
        n.input.extend(inputs)
        for key, value in attrs.items():
            n.attr[key].CopyFrom(value)
        return name

    def const_attrs(self, value, dtype) -> dict:
        """The ``value`` and ``dtype`` attrs of a Const node holding ``value`` as ``dtype``."""
        proto = self.tf.make_tensor_proto(np.asarray(value, dtype=dtype.as_numpy_dtype))
        return {"value": self._a(tensor=proto), "dtype": self.type_(dtype)}
