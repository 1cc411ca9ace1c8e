"""Arrow IPC stream bytes to Python columns and back, in pure Python.

The host sends each batch as an Arrow IPC stream (a schema message, one
record batch, the end marker) and reads the transform's answer the same
way. A column here is `(name, DataType, values)`, values a Python list with
None for nulls: ints, floats, bools, str, bytes, timestamps as ints in
their unit, lists as Python lists.

Only what a feature view's batches hold is supported: no dictionaries, no
compression, no structs or maps; anything else is an `IpcError` naming it.
"""

import struct

from .flatbuf import Builder, FlatbufferError, Table
from .types import DataType

CONTINUATION = 0xFFFFFFFF
METADATA_V5 = 4
HEADER_SCHEMA = 1
HEADER_RECORD_BATCH = 3

# Arrow's `Type` union.
TYPE_NULL = 1
TYPE_INT = 2
TYPE_FLOAT = 3
TYPE_BINARY = 4
TYPE_UTF8 = 5
TYPE_BOOL = 6
TYPE_TIMESTAMP = 10
TYPE_LIST = 12
TYPE_LARGE_BINARY = 19
TYPE_LARGE_UTF8 = 20
TYPE_LARGE_LIST = 21

UNITS = ["s", "ms", "us", "ns"]
FLOAT_PRECISIONS = {1: 32, 2: 64}
INT_FORMATS = {
    (8, True): "b",
    (16, True): "h",
    (32, True): "i",
    (64, True): "q",
    (8, False): "B",
    (16, False): "H",
    (32, False): "I",
    (64, False): "Q",
}


class IpcError(ValueError):
    """Bytes that are not an Arrow IPC stream this SDK reads, or columns it cannot write."""


# Reading.


def read_stream(data):
    """The columns and row count of the single record batch in `data`."""
    data = memoryview(bytes(data))
    pos = 0
    fields = None
    batches = []
    while True:
        message, body, pos = _next_message(data, pos)
        if message is None:
            break
        header_type = message.scalar(1, "B")
        header = message.table(2)
        if header is None:
            raise IpcError("a message without a header")
        if header_type == HEADER_SCHEMA:
            fields = [_read_field(f) for f in header.tables(1)]
        elif header_type == HEADER_RECORD_BATCH:
            if fields is None:
                raise IpcError("a record batch before the schema")
            batches.append(_read_batch(header, body, fields))
        else:
            raise IpcError(f"message type {header_type} is not supported (dictionaries, tensors)")
    if fields is None:
        raise IpcError("the stream holds no schema")
    if len(batches) > 1:
        raise IpcError(f"the stream holds {len(batches)} record batches, not one")
    if not batches:
        return [(name, dtype, []) for name, dtype, _ in fields], 0
    return batches[0]


def _next_message(data, pos):
    if pos + 4 > len(data):
        return None, None, pos
    (length,) = struct.unpack_from("<I", data, pos)
    pos += 4
    if length == CONTINUATION:
        if pos + 4 > len(data):
            raise IpcError("stream cut after a continuation marker")
        (length,) = struct.unpack_from("<I", data, pos)
        pos += 4
    if length == 0:
        return None, None, pos
    if pos + length > len(data):
        raise IpcError("message metadata runs past the end of the stream")
    try:
        message = Table.root(data[pos : pos + length])
        body_length = message.scalar(3, "q")
    except (FlatbufferError, struct.error) as e:
        raise IpcError(f"message metadata is not valid: {e}") from None
    pos += length
    if body_length < 0 or pos + body_length > len(data):
        raise IpcError("message body runs past the end of the stream")
    body = data[pos : pos + body_length]
    return message, body, pos + body_length


def _read_field(field):
    name = field.string(0) or ""
    nullable = bool(field.scalar(1, "?"))
    if field.table(4) is not None:
        raise IpcError(f"column `{name}`: dictionary-encoded columns are not supported")
    type_id = field.scalar(2, "B")
    spec = field.table(3)
    children = field.tables(5)
    if type_id == TYPE_INT:
        bits, signed = spec.scalar(0, "i"), bool(spec.scalar(1, "?"))
        if (bits, signed) not in INT_FORMATS:
            raise IpcError(f"column `{name}`: int of {bits} bits is not supported")
        dtype = DataType("int", bits, signed)
    elif type_id == TYPE_FLOAT:
        precision = spec.scalar(0, "h")
        if precision not in FLOAT_PRECISIONS:
            raise IpcError(f"column `{name}`: half floats are not supported")
        dtype = DataType("float", FLOAT_PRECISIONS[precision])
    elif type_id == TYPE_BOOL:
        dtype = DataType("bool")
    elif type_id in (TYPE_UTF8, TYPE_LARGE_UTF8):
        dtype = DataType("utf8", large=type_id == TYPE_LARGE_UTF8)
    elif type_id in (TYPE_BINARY, TYPE_LARGE_BINARY):
        dtype = DataType("binary", large=type_id == TYPE_LARGE_BINARY)
    elif type_id == TYPE_TIMESTAMP:
        unit = spec.scalar(0, "h")
        if not 0 <= unit < len(UNITS):
            raise IpcError(f"column `{name}`: unknown time unit {unit}")
        dtype = DataType("timestamp", 64, unit=UNITS[unit], tz=spec.string(1))
    elif type_id in (TYPE_LIST, TYPE_LARGE_LIST):
        if len(children) != 1:
            raise IpcError(f"column `{name}`: a list needs one child field")
        _, item, _ = _read_field(children[0])
        dtype = DataType("list", item=item, large=type_id == TYPE_LARGE_LIST)
    elif type_id == TYPE_NULL:
        dtype = DataType("null")
    else:
        raise IpcError(f"column `{name}`: Arrow type {type_id} is not supported")
    return name, dtype, nullable


class _BodyReader:
    """Walks a record batch's field nodes and buffers in order."""

    def __init__(self, header, body):
        if header.table(3) is not None:
            raise IpcError("compressed record batches are not supported")
        self.nodes = header.structs(1, "qq")
        self.buffers = header.structs(2, "qq")
        self.body = body
        self.node = 0
        self.buffer = 0

    def next_node(self, name):
        if self.node >= len(self.nodes):
            raise IpcError(f"column `{name}`: the batch has fewer field nodes than columns")
        length, nulls = self.nodes[self.node]
        self.node += 1
        if length < 0 or nulls < 0:
            raise IpcError(f"column `{name}`: negative length")
        return length, nulls

    def next_buffer(self, name):
        if self.buffer >= len(self.buffers):
            raise IpcError(f"column `{name}`: the batch has fewer buffers than its columns need")
        offset, length = self.buffers[self.buffer]
        self.buffer += 1
        if offset < 0 or length < 0 or offset + length > len(self.body):
            raise IpcError(f"column `{name}`: a buffer lies outside the message body")
        return self.body[offset : offset + length]


def _read_batch(header, body, fields):
    rows = header.scalar(0, "q")
    reader = _BodyReader(header, body)
    columns = []
    for name, dtype, _ in fields:
        values = _read_array(reader, name, dtype)
        if len(values) != rows:
            raise IpcError(f"column `{name}` has {len(values)} values for {rows} rows")
        columns.append((name, dtype, values))
    return columns, rows


def _validity(buffer, length, nulls, name):
    if nulls == 0:
        return None
    if len(buffer) * 8 < length:
        raise IpcError(f"column `{name}`: validity bitmap too short")
    bits = bytes(buffer)
    return [bits[i >> 3] >> (i & 7) & 1 for i in range(length)]


def _read_array(reader, name, dtype):
    length, nulls = reader.next_node(name)
    if dtype.kind == "null":
        return [None] * length
    valid = _validity(reader.next_buffer(name), length, nulls, name)
    kind = dtype.kind
    if kind in ("int", "timestamp", "float"):
        fmt = {32: "f", 64: "d"}[dtype.bits] if kind == "float" else INT_FORMATS[(dtype.bits, dtype.signed)]
        data = reader.next_buffer(name)
        size = struct.calcsize(fmt)
        if len(data) < size * length:
            raise IpcError(f"column `{name}`: values buffer too short")
        values = list(struct.unpack_from(f"<{length}{fmt}", data, 0))
    elif kind == "bool":
        data = bytes(reader.next_buffer(name))
        if len(data) * 8 < length:
            raise IpcError(f"column `{name}`: values bitmap too short")
        values = [bool(data[i >> 3] >> (i & 7) & 1) for i in range(length)]
    elif kind in ("utf8", "binary"):
        offsets = _offsets(reader.next_buffer(name), length, dtype.large, name)
        data = bytes(reader.next_buffer(name))
        _check_offsets(offsets, len(data), name)
        values = [data[offsets[i] : offsets[i + 1]] for i in range(length)]
        if kind == "utf8":
            try:
                values = [v.decode("utf-8") for v in values]
            except UnicodeDecodeError as e:
                raise IpcError(f"column `{name}`: text that is not UTF-8 ({e})") from None
    elif kind == "list":
        offsets = _offsets(reader.next_buffer(name), length, dtype.large, name)
        items = _read_array(reader, f"{name}.item", dtype.item)
        _check_offsets(offsets, len(items), name)
        values = [items[offsets[i] : offsets[i + 1]] for i in range(length)]
    else:
        raise IpcError(f"column `{name}`: {dtype!r} is not supported")
    if valid is not None:
        values = [v if ok else None for v, ok in zip(values, valid)]
    return values


def _offsets(buffer, length, large, name):
    if length == 0 and len(buffer) == 0:
        return [0]
    fmt = "q" if large else "i"
    size = 8 if large else 4
    if len(buffer) < size * (length + 1):
        raise IpcError(f"column `{name}`: offsets buffer too short")
    return list(struct.unpack_from(f"<{length + 1}{fmt}", buffer, 0))


def _check_offsets(offsets, available, name):
    previous = offsets[0]
    if previous < 0:
        raise IpcError(f"column `{name}`: negative offset")
    for offset in offsets[1:]:
        if offset < previous:
            raise IpcError(f"column `{name}`: offsets go backwards")
        previous = offset
    if previous > available:
        raise IpcError(f"column `{name}`: offsets run past the data")


# Writing.


def write_stream(columns, rows):
    """One record batch of `columns` (`(name, DataType, values)`, each with
    `rows` values) as Arrow IPC stream bytes."""
    for name, _, values in columns:
        if len(values) != rows:
            raise IpcError(f"column `{name}` has {len(values)} values for {rows} rows")
    schema = [
        (1, "tables", [_field_fields(name, dtype) for name, dtype, _ in columns]),
    ]
    out = bytearray()
    _write_message(out, HEADER_SCHEMA, schema, b"")
    nodes, buffers, body = [], [], bytearray()
    for name, dtype, values in columns:
        _write_array(dtype, values, nodes, buffers, body, name)
    batch = [
        (0, "q", rows),
        (1, "structs", ("qq", nodes)),
        (2, "structs", ("qq", buffers)),
    ]
    _write_message(out, HEADER_RECORD_BATCH, batch, bytes(body))
    out += struct.pack("<II", CONTINUATION, 0)
    return bytes(out)


def _write_message(out, header_type, header, body):
    metadata = Builder().finish(
        [
            (0, "h", METADATA_V5),
            (1, "B", header_type),
            (2, "table", header),
            (3, "q", len(body)),
        ]
    )
    padding = (-(len(metadata) + 8)) % 8
    out += struct.pack("<II", CONTINUATION, len(metadata) + padding)
    out += metadata + bytes(padding)
    out += body


def _field_fields(name, dtype):
    kind = dtype.kind
    children = None
    if kind == "int":
        type_id, spec = TYPE_INT, [(0, "i", dtype.bits), (1, "?", dtype.signed)]
    elif kind == "float":
        type_id, spec = TYPE_FLOAT, [(0, "h", 1 if dtype.bits == 32 else 2)]
    elif kind == "bool":
        type_id, spec = TYPE_BOOL, []
    elif kind == "utf8":
        type_id, spec = (TYPE_LARGE_UTF8 if dtype.large else TYPE_UTF8), []
    elif kind == "binary":
        type_id, spec = (TYPE_LARGE_BINARY if dtype.large else TYPE_BINARY), []
    elif kind == "timestamp":
        type_id = TYPE_TIMESTAMP
        spec = [(0, "h", UNITS.index(dtype.unit)), (1, "string", dtype.tz)]
    elif kind == "list":
        type_id, spec = (TYPE_LARGE_LIST if dtype.large else TYPE_LIST), []
        children = [_field_fields("item", dtype.item)]
    elif kind == "null":
        type_id, spec = TYPE_NULL, []
    else:
        raise IpcError(f"column `{name}`: cannot write {dtype!r}")
    return [
        (0, "string", name),
        (1, "?", True),
        (2, "B", type_id),
        (3, "table", spec),
        (5, "tables", children if children is not None else []),
    ]


def _add_buffer(data, buffers, body):
    buffers.append((len(body), len(data)))
    body += data
    body += bytes((-len(data)) % 8)


def _bitmap(flags):
    out = bytearray((len(flags) + 7) // 8)
    for i, flag in enumerate(flags):
        if flag:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def _write_array(dtype, values, nodes, buffers, body, name):
    nulls = sum(1 for v in values if v is None)
    nodes.append((len(values), nulls))
    if dtype.kind == "null":
        return
    validity = _bitmap([v is not None for v in values]) if nulls else b""
    _add_buffer(validity, buffers, body)
    kind = dtype.kind
    try:
        if kind in ("int", "timestamp"):
            fmt = INT_FORMATS[(dtype.bits, dtype.signed)]
            data = struct.pack(f"<{len(values)}{fmt}", *[0 if v is None else v for v in values])
            _add_buffer(data, buffers, body)
        elif kind == "float":
            fmt = "f" if dtype.bits == 32 else "d"
            data = struct.pack(f"<{len(values)}{fmt}", *[0.0 if v is None else v for v in values])
            _add_buffer(data, buffers, body)
        elif kind == "bool":
            _add_buffer(_bitmap([bool(v) for v in values]), buffers, body)
        elif kind in ("utf8", "binary"):
            encoded = [b"" if v is None else (v.encode("utf-8") if kind == "utf8" else bytes(v)) for v in values]
            _write_offsets(encoded, dtype.large, buffers, body)
            _add_buffer(b"".join(encoded), buffers, body)
        elif kind == "list":
            items = [[] if v is None else list(v) for v in values]
            _write_offsets(items, dtype.large, buffers, body)
            flat = [item for v in items for item in v]
            _write_array(dtype.item, flat, nodes, buffers, body, f"{name}.item")
        else:
            raise IpcError(f"column `{name}`: cannot write {dtype!r}")
    except (struct.error, TypeError, AttributeError, UnicodeEncodeError) as e:
        raise IpcError(f"column `{name}`: {_first_misfit(dtype, values) or e}") from None


def _first_misfit(dtype, values):
    """Which value of a column does not fit its type, and why."""
    from .types import check_value

    for row, value in enumerate(values):
        try:
            check_value(dtype, value, f"row {row}")
            if isinstance(value, str):
                value.encode("utf-8")
        except (TypeError, OverflowError) as e:
            return str(e)
        except UnicodeEncodeError as e:
            return f"row {row}: text that is not valid Unicode ({e.reason})"
    return None


def _write_offsets(parts, large, buffers, body):
    offsets = [0]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    fmt = "q" if large else "i"
    if not large and offsets[-1] > 0x7FFFFFFF:
        raise IpcError("a column holds more than 2 GiB")
    _add_buffer(struct.pack(f"<{len(offsets)}{fmt}", *offsets), buffers, body)
