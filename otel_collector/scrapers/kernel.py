"""Kernel scraper: file handles and the entropy pool, from /proc/sys.

/proc/sys/fs/file-nr has three numbers: file handles allocated, allocated but
unused (always 0 since Linux 2.6), and the limit, fs.file-max. A host that
reaches the limit fails every open() with ENFILE.
/proc/sys/kernel/random/entropy_avail has the bits of entropy the kernel
estimates it holds, which read 256 at all times since Linux 5.18, when the
random number generator stopped blocking once seeded. The conventions have
no name for either area, so the metrics are system.linux.file_handle.* and
system.linux.entropy.available. Both files are host-wide, also in a container.
"""

from __future__ import annotations

from otel_collector.scrapers.base import Point, Reading, Scraper, read_small_file


def parse_file_nr(text: bytes, path: str) -> tuple[int, int]:
    """Return the file handles in use and the limit from /proc/sys/fs/file-nr.

    Raises ValueError, naming `path`, when the file does not have three numbers.
    """
    fields = text.split()
    if len(fields) != 3 or not all(field.isdigit() for field in fields):
        raise ValueError(f"invalid {path}: expected 3 numbers, got {text[:80]!r}")
    allocated, unused, limit = (int(field) for field in fields)
    return allocated - unused, limit


class KernelScraper(Scraper):
    name = "kernel"

    def _file_handles(self) -> tuple[int, int]:
        path = f"{self.host.procfs}/sys/fs/file-nr"
        return parse_file_nr(read_small_file(path), path)

    def _entropy(self) -> int:
        return int(read_small_file(f"{self.host.procfs}/sys/kernel/random/entropy_avail"))

    def scrape(self) -> Reading:
        reading: Reading = {}
        if self.wants("system.linux.file_handle.count") or self.wants(
            "system.linux.file_handle.limit"
        ):
            handles = self.read("file-nr", self._file_handles)
            if handles is not None:
                reading["system.linux.file_handle.count"] = [Point(handles[0])]
                reading["system.linux.file_handle.limit"] = [Point(handles[1])]
        if self.wants("system.linux.entropy.available"):
            entropy = self.read("entropy_avail", self._entropy)
            if entropy is not None:
                reading["system.linux.entropy.available"] = [Point(entropy)]
        return reading
