"""Run one command and print its wall time, peak RSS and exit status as JSON.

Usage: python -I -S bench/measure_child.py OUTPUT_FILE COMMAND [ARG ...]

The command's stdout and stderr go to OUTPUT_FILE. The kernel starts a
child's ru_maxrss at the peak RSS of the process that spawned it, because the
shared or copied memory counts until exec. A probe spawned straight from the
benchmark, which has loaded grpc and runs receivers, would so report the
benchmark's RSS. Spawned from this small interpreter, the floor is this
interpreter's own peak RSS, which the output also reports.
"""

import json
import os
import sys
import time


def main() -> None:
    output_path, command = sys.argv[1], sys.argv[2:]
    with open(output_path, "wb") as output:
        actions = [
            (os.POSIX_SPAWN_DUP2, output.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, output.fileno(), 2),
        ]
        # The child shares this process's memory until exec (posix_spawn uses
        # vfork), so its ru_maxrss starts at this process's peak RSS.
        with open("/proc/self/status", encoding="ascii") as status:
            floor_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        started = time.monotonic()
        pid = os.posix_spawnp(command[0], command, os.environ, file_actions=actions)
        _, wait_status, usage = os.wait4(pid, 0)
        wall = time.monotonic() - started
    result = {
        "wall_s": wall,
        "maxrss_kib": usage.ru_maxrss,
        "exit_status": os.waitstatus_to_exitcode(wait_status),
        "floor_kib": floor_kib,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
