"""The few FlatBuffers operations Arrow IPC metadata needs, in pure Python.

Arrow's IPC messages describe schemas and record batches as FlatBuffers
tables. No FlatBuffers library runs inside the component, so this module
reads tables (`Table`) and writes them (`Builder`) directly from the
format's rules: a table starts with a signed offset back to its vtable,
the vtable lists each field's offset inside the table, and references to
strings, vectors and other tables are unsigned offsets forward.

The builder lays objects out front to back: a table, then the objects it
refers to, so every reference points forward as the format requires.
Scalars are aligned to their size from the start of the buffer.
"""

import struct


class FlatbufferError(ValueError):
    """Bytes that are not the FlatBuffers table they should be."""


class Table:
    """A FlatBuffers table at `pos` in `buf`, read lazily."""

    __slots__ = ("buf", "pos", "_vtable", "_vtable_len")

    def __init__(self, buf, pos):
        if pos < 0 or pos + 4 > len(buf):
            raise FlatbufferError(f"table at {pos} is outside the {len(buf)}-byte buffer")
        self.buf = buf
        self.pos = pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        if vtable < 0 or vtable + 4 > len(buf):
            raise FlatbufferError(f"vtable at {vtable} is outside the buffer")
        self._vtable = vtable
        self._vtable_len = struct.unpack_from("<H", buf, vtable)[0]

    @classmethod
    def root(cls, buf):
        """The root table of a whole FlatBuffers buffer."""
        if len(buf) < 4:
            raise FlatbufferError("buffer shorter than its root offset")
        return cls(buf, struct.unpack_from("<I", buf, 0)[0])

    def _field(self, slot):
        entry = 4 + 2 * slot
        if entry + 2 > self._vtable_len:
            return 0
        return struct.unpack_from("<H", self.buf, self._vtable + entry)[0]

    def scalar(self, slot, fmt, default=0):
        """Field `slot` as a scalar of struct format `fmt`, or `default` when absent."""
        offset = self._field(slot)
        if offset == 0:
            return default
        return struct.unpack_from("<" + fmt, self.buf, self.pos + offset)[0]

    def _target(self, slot):
        offset = self._field(slot)
        if offset == 0:
            return None
        at = self.pos + offset
        target = at + struct.unpack_from("<I", self.buf, at)[0]
        if target >= len(self.buf):
            raise FlatbufferError(f"reference at {at} points outside the buffer")
        return target

    def table(self, slot):
        """Field `slot` as a table, or None."""
        target = self._target(slot)
        return None if target is None else Table(self.buf, target)

    def string(self, slot):
        """Field `slot` as text, or None."""
        target = self._target(slot)
        if target is None:
            return None
        length = struct.unpack_from("<I", self.buf, target)[0]
        data = bytes(self.buf[target + 4 : target + 4 + length])
        if len(data) != length:
            raise FlatbufferError("string runs past the buffer")
        return data.decode("utf-8")

    def _vector(self, slot):
        target = self._target(slot)
        if target is None:
            return 0, 0
        length = struct.unpack_from("<I", self.buf, target)[0]
        return target + 4, length

    def tables(self, slot):
        """Field `slot` as a vector of tables (empty when absent)."""
        start, length = self._vector(slot)
        if start + 4 * length > len(self.buf):
            raise FlatbufferError("vector runs past the buffer")
        out = []
        for i in range(length):
            at = start + 4 * i
            out.append(Table(self.buf, at + struct.unpack_from("<I", self.buf, at)[0]))
        return out

    def structs(self, slot, fmt):
        """Field `slot` as a vector of structs of struct format `fmt`."""
        start, length = self._vector(slot)
        size = struct.calcsize("<" + fmt)
        if start + size * length > len(self.buf):
            raise FlatbufferError("vector runs past the buffer")
        return [struct.unpack_from("<" + fmt, self.buf, start + size * i) for i in range(length)]


class Builder:
    """Writes one FlatBuffers buffer front to back.

    A table is described as a list of `(slot, kind, value)`: kind is a
    struct format character for a scalar (`b`, `B`, `h`, `i`, `q`, `?`),
    or one of `table` (a list of the same form), `string`, `tables` (a
    list of table descriptions) and `structs` (a pair: struct format and a
    list of tuples).
    """

    def __init__(self):
        self.buf = bytearray(8)  # root offset, then padding

    def _align(self, size, extra=0):
        while (len(self.buf) + extra) % size:
            self.buf.append(0)

    def finish(self, root_fields):
        """The whole buffer with `root_fields` as its root table."""
        root = self._table(root_fields)
        struct.pack_into("<I", self.buf, 0, root)
        return bytes(self.buf)

    def _table(self, fields):
        inline = []
        refs = []
        for slot, kind, value in fields:
            if value is None:
                continue
            if kind in ("table", "string", "tables", "structs"):
                inline.append((slot, 4, "I", 0))
                refs.append((slot, kind, value))
            else:
                inline.append((slot, struct.calcsize("<" + kind), kind, value))
        # Largest first, so each field lands on its own alignment.
        inline.sort(key=lambda f: -f[1])
        layout = {}
        offset = 4
        for slot, size, _, _ in inline:
            offset = (offset + size - 1) // size * size
            layout[slot] = offset
            offset += size
        table_size = (offset + 3) // 4 * 4
        slots = max([s for s, _, _ in fields] + [-1]) + 1
        self._align(2)
        vtable = len(self.buf)
        self.buf += struct.pack("<HH", 4 + 2 * slots, table_size)
        for slot in range(slots):
            self.buf += struct.pack("<H", layout.get(slot, 0))
        self._align(8)
        table = len(self.buf)
        self.buf += bytes(table_size)
        struct.pack_into("<i", self.buf, table, table - vtable)
        for slot, _, fmt, value in inline:
            struct.pack_into("<" + fmt, self.buf, table + layout[slot], value)
        for slot, kind, value in refs:
            at = table + layout[slot]
            target = self._object(kind, value)
            struct.pack_into("<I", self.buf, at, target - at)
        return table

    def _object(self, kind, value):
        if kind == "table":
            return self._table(value)
        if kind == "string":
            data = value.encode("utf-8")
            self._align(4)
            at = len(self.buf)
            self.buf += struct.pack("<I", len(data)) + data + b"\0"
            return at
        if kind == "structs":
            fmt, items = value
            # Elements aligned to 8 (Arrow's structs hold 64-bit fields).
            self._align(8, extra=4)
            at = len(self.buf)
            self.buf += struct.pack("<I", len(items))
            for item in items:
                self.buf += struct.pack("<" + fmt, *item)
            return at
        if kind == "tables":
            self._align(4)
            at = len(self.buf)
            self.buf += struct.pack("<I", len(value))
            self.buf += bytes(4 * len(value))
            for i, fields in enumerate(value):
                slot_at = at + 4 + 4 * i
                target = self._table(fields)
                struct.pack_into("<I", self.buf, slot_at, target - slot_at)
            return at
        raise ValueError(f"unknown FlatBuffers object kind {kind!r}")
