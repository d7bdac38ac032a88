#!/usr/bin/env python3
"""Checks that our OTLP .proto files under Protos/opentelemetry are wire-compatible with the
descriptors shipped in the Python `opentelemetry-proto` package.

Our files are compiled with `protoc --descriptor_set_out`; for every file we compare packages,
messages (nested too), fields (name, number, label, type, referenced type, oneof), reserved
ranges, enums (value names and numbers) and services (methods with their input/output types)
against the module's FileDescriptor. Prints every mismatch and exits 1 if there is any.

Upstream fields listed in KNOWN_OMISSIONS are reported but do not fail the check: they are
Profiling-only (Alpha) fields that trace receivers must ignore; without them in our schema,
SwiftProtobuf keeps them as unknown fields, so a message carrying them still decodes and
re-encodes unchanged.

Usage: scripts/check-proto-compat.py   (needs protoc and `pip install opentelemetry-proto`)
"""
import importlib
import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTOS = os.path.join(ROOT, "Protos")

FDP = descriptor_pb2.FieldDescriptorProto
# (message, field) -> why our schema leaves it out.
KNOWN_OMISSIONS = {
    ("opentelemetry.proto.common.v1.AnyValue", "string_value_strindex"):
        "Profiling-only string-table index (Alpha); adding it would add a case to AnyValue.OneOf_Value",
    ("opentelemetry.proto.common.v1.KeyValue", "key_strindex"):
        "Profiling-only string-table index (Alpha)",
}
omitted = []

TYPE_NAMES = {v: k for k, v in FDP.Type.items()}
LABEL_NAMES = {v: k for k, v in FDP.Label.items()}


def our_files():
    """FileDescriptorProtos of every .proto under Protos/opentelemetry, keyed by import path."""
    rel = []
    for d, _, names in os.walk(os.path.join(PROTOS, "opentelemetry")):
        rel += [os.path.relpath(os.path.join(d, n), PROTOS) for n in names if n.endswith(".proto")]
    rel.sort()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ours.pb")
        subprocess.run(["protoc", "-I", PROTOS, "--include_imports", f"--descriptor_set_out={out}", *rel],
                       check=True)
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())
    return {fd.name: fd for fd in fds.file if fd.name in rel}


def upstream_file(name):
    """The Python package's FileDescriptorProto for an import path such as
    opentelemetry/proto/trace/v1/trace.proto (module opentelemetry.proto.trace.v1.trace_pb2)."""
    module = importlib.import_module(name[: -len(".proto")].replace("/", ".") + "_pb2")
    fdp = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(fdp)
    return fdp


def field_sig(field, oneofs):
    oneof = oneofs[field.oneof_index] if field.HasField("oneof_index") else None
    return (
        field.number,
        LABEL_NAMES[field.label],
        TYPE_NAMES[field.type],
        field.type_name.lstrip("."),
        oneof,
        field.proto3_optional,
    )


def compare_enum(path, ours, theirs, problems):
    a = {v.name: v.number for v in ours.value}
    b = {v.name: v.number for v in theirs.value}
    for name in sorted(a.keys() | b.keys()):
        if name not in a:
            problems.append(f"{path}: enum value {name} = {b[name]} missing from ours")
        elif name not in b:
            problems.append(f"{path}: enum value {name} = {a[name]} not upstream")
        elif a[name] != b[name]:
            problems.append(f"{path}.{name}: ours = {a[name]}, upstream = {b[name]}")


def compare_named(path, kind, ours, theirs, compare, problems):
    a = {x.name: x for x in ours}
    b = {x.name: x for x in theirs}
    for name in sorted(a.keys() | b.keys()):
        if name not in a:
            problems.append(f"{path}.{name}: {kind} missing from ours")
        elif name not in b:
            problems.append(f"{path}.{name}: {kind} not upstream")
        else:
            compare(f"{path}.{name}", a[name], b[name], problems)


def compare_message(path, ours, theirs, problems):
    a_oneofs = [o.name for o in ours.oneof_decl]
    b_oneofs = [o.name for o in theirs.oneof_decl]
    a = {f.name: field_sig(f, a_oneofs) for f in ours.field}
    b = {f.name: field_sig(f, b_oneofs) for f in theirs.field}
    for name in sorted(a.keys() | b.keys()):
        if name not in a and (path, name) in KNOWN_OMISSIONS:
            omitted.append(f"{path}.{name} = {b[name][0]}: {KNOWN_OMISSIONS[(path, name)]}")
        elif name not in a:
            problems.append(f"{path}.{name}: field {b[name]} missing from ours")
        elif name not in b:
            problems.append(f"{path}.{name}: field {a[name]} not upstream")
        elif a[name] != b[name]:
            problems.append(f"{path}.{name}: ours {a[name]} != upstream {b[name]}")
    # Two names on one number would break the wire format even if each name matched.
    numbers = {}
    for f in ours.field:
        if f.number in numbers:
            problems.append(f"{path}: fields {numbers[f.number]} and {f.name} share number {f.number}")
        numbers[f.number] = f.name
    a_res = sorted((r.start, r.end) for r in ours.reserved_range)
    b_res = sorted((r.start, r.end) for r in theirs.reserved_range)
    if a_res != b_res:
        problems.append(f"{path}: reserved ranges ours {a_res} != upstream {b_res}")
    compare_named(path, "nested message", ours.nested_type, theirs.nested_type, compare_message, problems)
    compare_named(path, "nested enum", ours.enum_type, theirs.enum_type, compare_enum, problems)


def compare_service(path, ours, theirs, problems):
    def methods(s):
        return {m.name: (m.input_type.lstrip("."), m.output_type.lstrip("."),
                         m.client_streaming, m.server_streaming) for m in s.method}
    a, b = methods(ours), methods(theirs)
    for name in sorted(a.keys() | b.keys()):
        if a.get(name) != b.get(name):
            problems.append(f"{path}.{name}: rpc ours {a.get(name)} != upstream {b.get(name)}")


def main():
    problems = []
    files = our_files()
    counts = {"messages": 0, "fields": 0, "enums": 0}

    def count(msgs):
        for m in msgs:
            counts["messages"] += 1
            counts["fields"] += len(m.field)
            counts["enums"] += len(m.enum_type)
            count(m.nested_type)

    for name, ours in sorted(files.items()):
        try:
            theirs = upstream_file(name)
        except ImportError as e:
            problems.append(f"{name}: no upstream module ({e})")
            continue
        if ours.package != theirs.package:
            problems.append(f"{name}: package ours {ours.package} != upstream {theirs.package}")
        if ours.syntax != theirs.syntax:
            problems.append(f"{name}: syntax ours {ours.syntax!r} != upstream {theirs.syntax!r}")
        path = ours.package
        compare_named(path, "message", ours.message_type, theirs.message_type, compare_message, problems)
        compare_named(path, "enum", ours.enum_type, theirs.enum_type, compare_enum, problems)
        compare_named(path, "service", ours.service, theirs.service, compare_service, problems)
        count(ours.message_type)
        counts["enums"] += len(ours.enum_type)
        print(f"checked {name}")

    try:
        from importlib.metadata import version
        upstream_version = version("opentelemetry-proto")
    except Exception:
        upstream_version = "unknown"
    if omitted:
        print("known omissions (not failures):")
        for o in omitted:
            print(f"  {o}")
    if problems:
        print(f"{len(problems)} mismatch(es) against opentelemetry-proto {upstream_version}:")
        for p in problems:
            print(f"  {p}")
        return 1
    print(f"OK: {len(files)} files, {counts['messages']} messages, {counts['fields']} fields, "
          f"{counts['enums']} enums match opentelemetry-proto {upstream_version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
