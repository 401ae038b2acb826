"""What the fixture extract scripts share: reading an unpacked npm package's file, and naming it.

``python scripts/extract_*.py PACKAGE_DIR TARGET`` each read one file of a package unpacked with
``npm pack`` and ``tar xzf``; the fixture they write records where it came from (``source``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PackageFile:
    name: str
    version: str
    file: str
    raw: bytes

    def provenance(self) -> dict[str, Any]:
        """The fixture's ``source``: package, version, file and the file's sha256."""
        return {
            "package": self.name,
            "version": self.version,
            "file": self.file,
            "file_sha256": hashlib.sha256(self.raw).hexdigest(),
        }


def read_package_file(argv: list[str], file: str, usage: str | None) -> tuple[PackageFile, Path] | None:
    """``file`` of the package named by ``argv[1]``, and the target ``argv[2]``; None (the usage
    printed) when the arguments are not those two."""
    if len(argv) != 3:
        print(usage)
        return None
    package, target = Path(argv[1]), Path(argv[2])
    meta = json.loads((package / "package.json").read_text("utf-8"))
    return PackageFile(str(meta["name"]), str(meta["version"]), file, (package / file).read_bytes()), target
