"""Listening TCP sockets of a process tree, read from /proc (psutil is not a dependency)."""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path


def descendants(root: int) -> set[int]:
    """`root` and every live process below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        new = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= new
        grew = bool(new)
    return tree


def _decode(hex_addr: str) -> str:
    ip_hex, port = hex_addr.split(":")
    raw = bytes.fromhex(ip_hex)
    if len(raw) == 4:
        ip = ipaddress.IPv4Address(raw[::-1])
    else:  # /proc prints IPv6 as four little-endian 32-bit words
        ip = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
        ip = ip.ipv4_mapped or ip
    return f"{ip}:{int(port, 16)}"


def listening(pids: set[int]) -> dict[str, int]:
    """'address:port' -> pid for every TCP socket in LISTEN state owned by one of `pids`."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            continue
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:
                found[_decode(cols[1])] = inodes[cols[9]]
    return found


def is_loopback(addr: str) -> bool:
    return ipaddress.ip_address(addr.rsplit(":", 1)[0]).is_loopback
