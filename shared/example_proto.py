"""tf.train.SequenceExample without TensorFlow: the same messages, the same wire format.

Importing ``tensorflow.core.example`` loads all of TensorFlow (about 650 MB
and seconds of CPU per process), which every Beam and grain worker would pay
just to build a protocol buffer. This module declares TensorFlow's
``feature.proto`` and ``example.proto`` messages (package ``tensorflow``,
identical fields and numbers) in a private descriptor pool, so the bytes are
interchangeable with TensorFlow's and the classes never clash with
TensorFlow's own when both are loaded.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_FIELD = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "tensorflow"


def _message(file, name, fields=(), nested=(), oneofs=(), map_entry=False):
  message = file.message_type.add() if file is not None else descriptor_pb2.DescriptorProto()
  message.name = name
  if map_entry:
    message.options.map_entry = True
  for oneof in oneofs:
    message.oneof_decl.add().name = oneof
  for nested_message in nested:
    message.nested_type.add().CopyFrom(nested_message)
  for field_name, number, kind, label, type_name, oneof_index in fields:
    field = message.field.add()
    field.name, field.number, field.type, field.label = field_name, number, kind, label
    if type_name:
      field.type_name = type_name
    if oneof_index is not None:
      field.oneof_index = oneof_index
    if kind in (_FIELD.TYPE_FLOAT, _FIELD.TYPE_INT64) and label == _FIELD.LABEL_REPEATED:
      field.options.packed = True
  return message


def _map_entry(name, value_type):
  return _message(None, name, fields=[
      ("key", 1, _FIELD.TYPE_STRING, _FIELD.LABEL_OPTIONAL, None, None),
      ("value", 2, _FIELD.TYPE_MESSAGE, _FIELD.LABEL_OPTIONAL, value_type, None),
  ], map_entry=True)


def _build_pool() -> descriptor_pool.DescriptorPool:
  repeated, optional = _FIELD.LABEL_REPEATED, _FIELD.LABEL_OPTIONAL
  feature = descriptor_pb2.FileDescriptorProto(name="tensorflow/core/example/feature.proto", package=_PACKAGE,
                                               syntax="proto3")
  _message(feature, "BytesList", [("value", 1, _FIELD.TYPE_BYTES, repeated, None, None)])
  _message(feature, "FloatList", [("value", 1, _FIELD.TYPE_FLOAT, repeated, None, None)])
  _message(feature, "Int64List", [("value", 1, _FIELD.TYPE_INT64, repeated, None, None)])
  _message(feature, "Feature", [
      ("bytes_list", 1, _FIELD.TYPE_MESSAGE, optional, ".tensorflow.BytesList", 0),
      ("float_list", 2, _FIELD.TYPE_MESSAGE, optional, ".tensorflow.FloatList", 0),
      ("int64_list", 3, _FIELD.TYPE_MESSAGE, optional, ".tensorflow.Int64List", 0),
  ], oneofs=["kind"])
  _message(feature, "Features", [
      ("feature", 1, _FIELD.TYPE_MESSAGE, repeated, ".tensorflow.Features.FeatureEntry", None),
  ], nested=[_map_entry("FeatureEntry", ".tensorflow.Feature")])
  _message(feature, "FeatureList", [("feature", 1, _FIELD.TYPE_MESSAGE, repeated, ".tensorflow.Feature", None)])
  _message(feature, "FeatureLists", [
      ("feature_list", 1, _FIELD.TYPE_MESSAGE, repeated, ".tensorflow.FeatureLists.FeatureListEntry", None),
  ], nested=[_map_entry("FeatureListEntry", ".tensorflow.FeatureList")])

  example = descriptor_pb2.FileDescriptorProto(name="tensorflow/core/example/example.proto", package=_PACKAGE,
                                               syntax="proto3", dependency=[feature.name])
  _message(example, "Example", [("features", 1, _FIELD.TYPE_MESSAGE, optional, ".tensorflow.Features", None)])
  _message(example, "SequenceExample", [
      ("context", 1, _FIELD.TYPE_MESSAGE, optional, ".tensorflow.Features", None),
      ("feature_lists", 2, _FIELD.TYPE_MESSAGE, optional, ".tensorflow.FeatureLists", None),
  ])

  pool = descriptor_pool.DescriptorPool()
  pool.Add(feature)
  pool.Add(example)
  return pool


_POOL = _build_pool()


def _class(name: str):
  return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


BytesList = _class("BytesList")
FloatList = _class("FloatList")
Int64List = _class("Int64List")
Feature = _class("Feature")
Features = _class("Features")
FeatureList = _class("FeatureList")
FeatureLists = _class("FeatureLists")
Example = _class("Example")
SequenceExample = _class("SequenceExample")
