"""Arrow data types a transform's columns can have: every type a Feast
feature or join key maps to (ints, floats, bool, string, bytes, timestamps,
and lists of each), plus the narrower ints Arrow input may carry."""


class DataType:
    """An Arrow type, by kind: `int`, `float`, `bool`, `utf8`, `binary`,
    `timestamp`, `list` or `null`."""

    __slots__ = ("kind", "bits", "signed", "unit", "tz", "item", "large")

    def __init__(self, kind, bits=0, signed=True, unit="us", tz=None, item=None, large=False):
        self.kind = kind
        self.bits = bits
        self.signed = signed
        self.unit = unit
        self.tz = tz
        self.item = item
        self.large = large

    def _key(self):
        return (self.kind, self.bits, self.signed, self.unit, self.tz, self.item, self.large)

    def __eq__(self, other):
        return isinstance(other, DataType) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        if self.kind == "int":
            return f"{'' if self.signed else 'u'}int{self.bits}"
        if self.kind == "float":
            return f"float{self.bits}"
        if self.kind == "timestamp":
            return f"timestamp[{self.unit}, tz={self.tz}]"
        if self.kind == "list":
            return f"{'large_' if self.large else ''}list<{self.item!r}>"
        return ("large_" if self.large else "") + self.kind

    @property
    def is_numeric(self):
        return self.kind in ("int", "float")


int8 = DataType("int", 8)
int16 = DataType("int", 16)
int32 = DataType("int", 32)
int64 = DataType("int", 64)
uint8 = DataType("int", 8, signed=False)
uint16 = DataType("int", 16, signed=False)
uint32 = DataType("int", 32, signed=False)
uint64 = DataType("int", 64, signed=False)
float32 = DataType("float", 32)
float64 = DataType("float", 64)
bool_ = DataType("bool")
string = DataType("utf8")
binary = DataType("binary")
null = DataType("null")


def timestamp(unit="us", tz="UTC"):
    """A timestamp in `unit` (`s`, `ms`, `us`, `ns`) since the epoch; values
    are ints in that unit. Feast's UnixTimestamp is `timestamp("us", "UTC")`."""
    if unit not in ("s", "ms", "us", "ns"):
        raise ValueError(f"timestamp unit {unit!r} is not one of s, ms, us, ns")
    return DataType("timestamp", 64, unit=unit, tz=tz)


def list_(item):
    """A list of `item` values (Feast's Array types)."""
    return DataType("list", item=item)


# Feast's type names, as a view's schema spells them.
FEAST_TYPES = {
    "Int32": int32,
    "Int64": int64,
    "Float32": float32,
    "Float64": float64,
    "Bool": bool_,
    "String": string,
    "Bytes": binary,
    "UnixTimestamp": timestamp(),
}


def _int_range(dtype):
    if dtype.signed:
        return -(1 << (dtype.bits - 1)), (1 << (dtype.bits - 1)) - 1
    return 0, (1 << dtype.bits) - 1


def check_value(dtype, value, where):
    """Raises TypeError or OverflowError, naming `where`, when `value`
    cannot be stored as `dtype` (None is always a null)."""
    if value is None:
        return
    kind = dtype.kind
    if kind in ("int", "timestamp"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{where}: {value!r} is not an int ({dtype!r})")
        low, high = _int_range(dtype) if kind == "int" else (-(1 << 63), (1 << 63) - 1)
        if not low <= value <= high:
            raise OverflowError(f"{where}: {value} does not fit {dtype!r}")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{where}: {value!r} is not a number ({dtype!r})")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"{where}: {value!r} is not a bool")
    elif kind == "utf8":
        if not isinstance(value, str):
            raise TypeError(f"{where}: {value!r} is not a str")
    elif kind == "binary":
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"{where}: {value!r} is not bytes")
    elif kind == "list":
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{where}: {value!r} is not a list")
        for i, item in enumerate(value):
            check_value(dtype.item, item, f"{where}[{i}]")
    elif kind == "null":
        raise TypeError(f"{where}: a null column holds only None")
