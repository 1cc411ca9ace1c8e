"""A batch of rows as named columns, with the operations a feature
transform needs: read a column by name, compute element-wise, add, replace
and drop columns, keep some rows, and reject a row with a reason."""

import math
import struct

from .types import DataType, check_value, float32, float64, int64, bool_


class Column:
    """A typed column: a list of values, None for nulls.

    Arithmetic (`+ - * / // %`, unary `-`, `abs`) and comparisons (`< <= >
    >= == !=`) work element-wise against a number or another column of the
    same length; a null on either side gives a null. Integer results are
    int64, anything with a float or `/` is float64; `cast` narrows.
    """

    __slots__ = ("dtype", "values", "name")

    def __init__(self, values, dtype, name=None):
        self.values = list(values)
        self.dtype = dtype
        # The batch column it was read from, for messages.
        self.name = name

    def _where(self, row):
        return f"column `{self.name}` row {row}" if self.name else f"row {row}"

    def __bool__(self):
        raise TypeError(
            "a Column has no single truth value; use .any(), .all(), or batch.filter(mask)"
        )

    def __len__(self):
        return len(self.values)

    def __iter__(self):
        return iter(self.values)

    def __getitem__(self, row):
        return self.values[row]

    def __repr__(self):
        shown = ", ".join(repr(v) for v in self.values[:8])
        more = ", ..." if len(self.values) > 8 else ""
        return f"Column<{self.dtype!r}>[{shown}{more}]"

    def to_list(self):
        return list(self.values)

    def map(self, function, dtype=None):
        """`function` applied to each non-null value; the result's type is
        `dtype`, else the type of its first non-null result (int64,
        float64, bool, string, bytes), else this column's."""
        values = [None if v is None else function(v) for v in self.values]
        if dtype is None:
            first = next((v for v in values if v is not None), None)
            dtype = self.dtype if first is None or isinstance(first, list) else _scalar_type(first)
        for i, value in enumerate(values):
            check_value(dtype, value, f"{self._where(i)} (from map)")
        return Column(values, dtype)

    def round(self, digits=0):
        """Each value rounded to `digits` decimals (floats stay floats)."""
        return Column([None if v is None else round(v, digits) for v in self.values], self.dtype)

    def _present(self):
        return [v for v in self.values if v is not None]

    def count(self):
        """Non-null values."""
        return len(self._present())

    def sum(self):
        """Sum of the non-null values (0 when there are none)."""
        return sum(self._present())

    def mean(self):
        """Mean of the non-null values, or None."""
        present = self._present()
        return sum(present) / len(present) if present else None

    def min(self):
        present = self._present()
        return min(present) if present else None

    def max(self):
        present = self._present()
        return max(present) if present else None

    def any(self):
        """True if some non-null value is true."""
        return any(self._present())

    def all(self):
        """True if every non-null value is true."""
        return all(self._present())

    def cast(self, dtype):
        """The values as `dtype`: numbers between ints and floats (float32
        rounds to the nearest single-precision value, as Arrow does; a float
        to an int truncates toward zero), anything to string via `str`."""
        if dtype.kind == "float":
            convert = _to_float32 if dtype.bits == 32 else float
        elif dtype.kind in ("int", "timestamp"):
            convert = _to_int
        elif dtype.kind == "utf8":
            convert = str
        elif dtype.kind == "bool":
            convert = bool
        else:
            convert = lambda v: v  # noqa: E731 - lists, bytes: only relabelled, then checked
        values = []
        for i, v in enumerate(self.values):
            try:
                values.append(None if v is None else convert(v))
            except (ValueError, TypeError, OverflowError) as e:
                raise ValueError(f"{self._where(i)}: cannot cast {v!r} to {dtype!r} ({e})") from None
        for i, value in enumerate(values):
            check_value(dtype, value, self._where(i))
        return Column(values, dtype)

    def is_null(self):
        return Column([v is None for v in self.values], bool_)

    def fill_null(self, value):
        return Column([value if v is None else v for v in self.values], self.dtype)

    def _binary(self, other, op, result_type):
        if isinstance(other, Column):
            if len(other) != len(self):
                raise ValueError(f"columns of {len(self)} and {len(other)} rows")
            pairs = zip(self.values, other.values)
        else:
            pairs = ((v, other) for v in self.values)
        return Column([None if a is None or b is None else op(a, b) for a, b in pairs], result_type)

    def _numeric_type(self, other, division=False, op="arithmetic"):
        other_type = other.dtype if isinstance(other, Column) else _scalar_type(other)
        if not self.dtype.is_numeric or not other_type.is_numeric:
            raise TypeError(f"{op} on {self.dtype!r} and {other_type!r}")
        if division or self.dtype.kind == "float" or other_type.kind == "float":
            return float64
        return int64

    def _time_type(self, other, op):
        """The result of timestamp arithmetic, or None when neither side is a timestamp:
        timestamp - timestamp is an int64 in their unit; timestamp +/- int a timestamp."""
        other_type = other.dtype if isinstance(other, Column) else _scalar_type(other)
        if self.dtype.kind != "timestamp" and other_type.kind != "timestamp":
            return None
        if op == "-" and self.dtype.kind == other_type.kind == "timestamp":
            if self.dtype.unit != other_type.unit:
                raise TypeError(f"timestamps in {self.dtype.unit} and {other_type.unit}: cast one first")
            return int64
        if self.dtype.kind == "timestamp" and other_type.kind == "int" and op in "+-":
            return self.dtype
        if op == "+" and other_type.kind == "timestamp" and self.dtype.kind == "int":
            return other_type
        raise TypeError(f"{self.dtype!r} {op} {other_type!r}: timestamps take ints in their unit")

    def __add__(self, other):
        result = self._time_type(other, "+") or self._numeric_type(other)
        return self._binary(other, lambda a, b: a + b, result)

    def __radd__(self, other):
        return self.__add__(other)

    def __sub__(self, other):
        result = self._time_type(other, "-") or self._numeric_type(other)
        return self._binary(other, lambda a, b: a - b, result)

    def __rsub__(self, other):
        return self._binary(other, lambda a, b: b - a, self._numeric_type(other))

    def __mul__(self, other):
        return self._binary(other, lambda a, b: a * b, self._numeric_type(other))

    def __rmul__(self, other):
        return self.__mul__(other)

    def __truediv__(self, other):
        return self._binary(other, _divide, self._numeric_type(other, division=True))

    def __rtruediv__(self, other):
        return self._binary(other, lambda a, b: _divide(b, a), self._numeric_type(other, division=True))

    def __floordiv__(self, other):
        return self._binary(other, lambda a, b: None if b == 0 else a // b, self._numeric_type(other))

    def __mod__(self, other):
        return self._binary(other, lambda a, b: None if b == 0 else a % b, self._numeric_type(other))

    def _logical(self, other, op):
        other_type = other.dtype if isinstance(other, Column) else _scalar_type(other)
        if self.dtype.kind != "bool" or other_type.kind != "bool":
            raise TypeError(f"& | need bool columns, not {self.dtype!r} and {other_type!r}")
        return self._binary(other, op, bool_)

    def __and__(self, other):
        return self._logical(other, lambda a, b: a and b)

    def __rand__(self, other):
        return self.__and__(other)

    def __or__(self, other):
        return self._logical(other, lambda a, b: a or b)

    def __ror__(self, other):
        return self.__or__(other)

    def __invert__(self):
        if self.dtype.kind != "bool":
            raise TypeError(f"~ needs a bool column, not {self.dtype!r}")
        return self.map(lambda v: not v, bool_)

    def __neg__(self):
        return self.map(lambda v: -v)

    def __abs__(self):
        return self.map(abs)

    def __lt__(self, other):
        return self._binary(other, lambda a, b: a < b, bool_)

    def __le__(self, other):
        return self._binary(other, lambda a, b: a <= b, bool_)

    def __gt__(self, other):
        return self._binary(other, lambda a, b: a > b, bool_)

    def __ge__(self, other):
        return self._binary(other, lambda a, b: a >= b, bool_)

    def __eq__(self, other):
        return self._binary(other, lambda a, b: a == b, bool_)

    def __ne__(self, other):
        return self._binary(other, lambda a, b: a != b, bool_)

    __hash__ = None


def _divide(a, b):
    """`a / b` with IEEE 754's answers for a zero divisor (as Arrow computes)."""
    if b == 0:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _to_float32(value):
    return struct.unpack("<f", struct.pack("<f", float(value)))[0]


def _to_int(value):
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"{value} has no integer value")
        return int(value)
    return int(value)


class Batch:
    """Rows as named columns, in order.

    `batch["name"]` reads a column; `batch["name"] = column` adds or
    replaces one (a Column, a list with the type given by `set`, or a
    single value repeated). `drop`, `select` and `filter` return new
    batches. `reject(row, reason)` refuses an input row: it is left out of
    the output and the host dead-letters the event behind it.
    """

    def __init__(self, columns=None, rows=None, origins=None):
        self._columns = {}
        if columns:
            for name, column in columns.items() if isinstance(columns, dict) else columns:
                self._columns[name] = column
        if rows is None:
            rows = len(next(iter(self._columns.values()))) if self._columns else 0
        self._rows = rows
        # The input row each row came from: rejections name input rows.
        self._origins = list(range(rows)) if origins is None else list(origins)
        self._rejected = {}
        for name, column in self._columns.items():
            if len(column) != rows:
                raise ValueError(f"column `{name}` has {len(column)} values for {rows} rows")

    @property
    def num_rows(self):
        return self._rows

    def __len__(self):
        return self._rows

    @property
    def column_names(self):
        return list(self._columns)

    def __contains__(self, name):
        return name in self._columns

    def __getitem__(self, name):
        try:
            column = self._columns[name]
            column.name = name
            return column
        except KeyError:
            raise KeyError(f"no column `{name}` (the batch has {', '.join(self._columns) or 'none'})") from None

    def __setitem__(self, name, value):
        if isinstance(value, Column):
            column = value
        elif isinstance(value, (list, tuple)):
            raise TypeError(f"column `{name}`: give a list its type with batch.set({name!r}, values, dtype)")
        else:
            dtype = _scalar_type(value)
            column = Column([value] * self._rows, dtype)
        self._check_length(name, column)
        self._columns[name] = column

    def set(self, name, values, dtype):
        """Adds or replaces column `name` with `values` of `dtype`; each
        value is checked (a value that does not fit names its row)."""
        values = list(values)
        for i, value in enumerate(values):
            check_value(dtype, value, f"column `{name}` row {i}")
        column = Column(values, dtype)
        self._check_length(name, column)
        self._columns[name] = column

    def _check_length(self, name, column):
        if len(column) != self._rows:
            raise ValueError(f"column `{name}` has {len(column)} values for {self._rows} rows")

    def __delitem__(self, name):
        self[name]
        del self._columns[name]

    def drop(self, *names):
        """The batch without the named columns (each must exist)."""
        for name in names:
            self[name]
        return self._derive({n: c for n, c in self._columns.items() if n not in names})

    def select(self, *names):
        """The batch with only the named columns, in that order."""
        return self._derive({n: self[n] for n in names})

    def filter(self, mask):
        """The rows where `mask` (a bool Column or list) is true; rows left
        out this way are not rejections (nothing is dead-lettered)."""
        keep = [i for i, flag in enumerate(mask) if flag]
        if len(mask) != self._rows:
            raise ValueError(f"mask of {len(mask)} for {self._rows} rows")
        columns = {n: Column([c.values[i] for i in keep], c.dtype) for n, c in self._columns.items()}
        out = Batch(columns, rows=len(keep), origins=[self._origins[i] for i in keep])
        out._rejected = dict(self._rejected)
        return out

    def _derive(self, columns):
        out = Batch(columns, rows=self._rows, origins=self._origins)
        out._rejected = dict(self._rejected)
        return out

    def reject(self, row, reason):
        """Refuses row `row` of this batch with `reason`."""
        if not 0 <= row < self._rows:
            raise IndexError(f"row {row} is outside the batch's {self._rows} rows")
        self._rejected[self._origins[row]] = str(reason)

    @property
    def rejected(self):
        """Input rows refused so far and why, by input row."""
        return dict(self._rejected)

    def rows(self):
        """Each row as a dict of column name to value."""
        names = list(self._columns)
        for i in range(self._rows):
            yield {n: self._columns[n].values[i] for n in names}

    def without_rejected(self):
        """The batch without its rejected rows (what the host receives)."""
        if not self._rejected:
            return self
        mask = [origin not in self._rejected for origin in self._origins]
        return self.filter(mask)

    def __repr__(self):
        return f"Batch({self._rows} rows: {', '.join(f'{n}: {c.dtype!r}' for n, c in self._columns.items())})"


def _scalar_type(value):
    if isinstance(value, bool):
        return bool_
    if isinstance(value, int):
        return int64
    if isinstance(value, float):
        return float64
    if isinstance(value, str):
        return DataType("utf8")
    if isinstance(value, (bytes, bytearray)):
        return DataType("binary")
    if value is None:
        return DataType("null")
    raise TypeError(f"{value!r} is not a column value")


__all__ = ["Batch", "Column", "float32", "float64", "int64"]
