"""One exception type per domain. Messages name the file, the record and the fix."""


class RawDataError(ValueError):
    """Raw input (BSON dump, JSON lines, images, feature files) is malformed or unusable."""


class ConfigurationError(ValueError):
    """A parameter or catalog entry is missing, out of range or inconsistent."""


def describe_location(source, record=None) -> str:
    """``"file.bson, record 12"``: the prefix every data error message starts with."""
    return f"{source}, record {record}" if record is not None else f"{source}"
