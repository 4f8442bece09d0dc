#!/usr/bin/env python3
"""pppvm: run the real pppd in a small qemu VM, as a peer for userppp.

The host kernel has no PPP (no /dev/ppp), so pppd runs inside a tiny VM:
Debian's kernel plus an initramfs holding busybox, pppd, its shared
libraries and the PPP kernel modules, all taken from Debian packages with
`apt-get download` + `dpkg -x` (nothing is installed on the host).

Layout of the VM's serial ports (fixed, whatever the mode):
  ttyS0  console: kernel messages, /init's `PPPVM:` markers and pppd's log
         (pppd runs with `logfd 1`); captured to a file on the host.
  ttyS1  the PPP line of pppd.  A unix socket on the host, bridged by a
         thread of this module to a host pty (`vm.pty_path`) for userppp.
  ttyS2  pair mode only: the PPP line of a second pppd ("peer"), whose log
         lines reach the console prefixed `PEER| `.  The host bridges
         ttyS1 <-> ttyS2 and records every byte (`vm.wire`).
  ttyS3  control: each line the host writes is run by the VM's shell
         (`vm.vm_exec()`, `vm.kill_pppd()`); its output goes to the console.

/init prints `PPPD-EXIT=<code>` (and `PEER-EXIT=<code>`) when pppd exits,
then powers the VM off.

The image is cached in $USERPPP_VM_CACHE (default ~/.cache/userppp/vm),
keyed by the exact Debian package versions, so a rebuild happens only when
Debian ships new packages.  A scenario (pppd options and files such as
/etc/ppp/chap-secrets) is a small cpio archive appended to the base one.

CLI:
  python tools/pppvm.py build [--arch amd64|i386]
  python tools/pppvm.py run [--arch ..] [--timeout S] -- <pppd options>
  python tools/pppvm.py pair [--arch ..] --peer 'opt opt' -- <pppd options>
"""
from __future__ import annotations

import argparse
import atexit
import dataclasses
import fcntl
import hashlib
import json
import lzma
import os
import re
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path
from typing import Iterable, Mapping, Sequence

BUILDER_VERSION = 3  # bump when the image layout or /init changes

# --------------------------------------------------------------------------
# architectures


@dataclasses.dataclass(frozen=True)
class Arch:
    name: str          # our name: amd64 | i386
    deb_arch: str      # Debian architecture
    kernel_meta: str   # metapackage naming the current kernel
    qemu: str          # qemu binary
    multiarch: str     # multiarch triplet of library paths


ARCHES = {
    "amd64": Arch("amd64", "amd64", "linux-image-amd64", "qemu-system-x86_64",
                  "x86_64-linux-gnu"),
    # 32-bit: Linux's BSD-Compress decompressor only keeps sync on 32-bit
    # kernels, so BSD-Compress interop needs this one.
    "i386": Arch("i386", "i386", "linux-image-686", "qemu-system-i386",
                 "i386-linux-gnu"),
}
ARCH_ALIASES = {"x86_64": "amd64", "686": "i386", "x86": "i386", "i686": "i386"}

# userspace packages we start from; their library dependencies are added
ROOT_PACKAGES = ["ppp", "busybox-static"]
# library-named packages that pppd does not need at run time
SKIP_PACKAGES = {"libpam-modules", "libpam-modules-bin", "libpam-runtime",
                 "libaudit-common", "libdebian-installer4"}
# binaries of the ppp package put in the image (with their libraries)
PPP_BINARIES = ["usr/sbin/pppd", "usr/sbin/chat", "usr/sbin/pppdump",
                "usr/sbin/pppstats"]
# PPP kernel modules in load order (a module already built in just fails
# to insmod, which /init ignores)
PPP_MODULES = ["slhc", "ppp_generic", "ppp_async", "ppp_synctty", "bsd_comp",
               "ppp_deflate", "libarc4", "ppp_mppe"]


def resolve_arch(name: str) -> Arch:
    name = ARCH_ALIASES.get(name, name)
    try:
        return ARCHES[name]
    except KeyError:
        raise ValueError(f"unknown arch {name!r}; one of {sorted(ARCHES)}") from None


def cache_root() -> Path:
    env = os.environ.get("USERPPP_VM_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "userppp" / "vm"


class PppVmError(RuntimeError):
    """The harness itself failed (missing tool, image build, VM boot)."""


def _log(msg: str) -> None:
    if os.environ.get("PPPVM_QUIET") != "1":
        print(f"pppvm: {msg}", file=sys.stderr, flush=True)


def _run(cmd: Sequence[str], cwd=None, timeout=600) -> str:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise PppVmError(f"{' '.join(cmd[:4])}... failed ({proc.returncode}):\n"
                         f"{proc.stderr.strip()[-2000:]}")
    return proc.stdout


# --------------------------------------------------------------------------
# package resolution (apt)


def _qual(pkg: str, arch: Arch) -> str:
    return pkg if ":" in pkg else f"{pkg}:{arch.deb_arch}"


def _bare(pkg: str) -> str:
    return pkg.split(":", 1)[0]


def _apt_depends(pkgs: Iterable[str], arch: Arch) -> dict[str, list[list[str]]]:
    """Depends/Pre-Depends of each package, as groups of alternatives."""
    out = _run(["apt-cache", "depends", "--no-recommends", "--no-suggests",
                "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"]
               + [_qual(p, arch) for p in pkgs])
    deps: dict[str, list[list[str]]] = {}
    cur = None
    alt: list[str] = []
    for line in out.splitlines():
        if not line.startswith(" "):
            cur = _bare(line.strip())
            deps[cur] = []
            alt = []
            continue
        m = re.match(r"\s*(\|?)(?:Pre)?Depends:\s*(\S+)", line)
        if not m or cur is None:
            continue
        name = m.group(2)
        alt.append(name)
        if not m.group(1):  # no '|': the group of alternatives ends here
            deps[cur].append(alt)
            alt = []
    return deps


def _apt_versions(pkgs: Iterable[str], arch: Arch) -> dict[str, str]:
    out = _run(["apt-cache", "show", "--no-all-versions"] + [_qual(p, arch) for p in pkgs])
    versions: dict[str, str] = {}
    name = None
    for line in out.splitlines():
        if line.startswith("Package: "):
            name = line.split(None, 1)[1].strip()
        elif line.startswith("Version: ") and name:
            versions.setdefault(name, line.split(None, 1)[1].strip())
    return versions


def _apt_fingerprint(arch: Arch) -> str:
    """Changes whenever `apt-get update` brings new package lists."""
    h = hashlib.sha256(arch.name.encode())
    lists = Path("/var/lib/apt/lists")
    for p in sorted(lists.glob("*Packages*")) if lists.is_dir() else []:
        st = p.stat()
        h.update(f"{p.name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def resolve_packages(arch: Arch) -> dict[str, str]:
    """Package name -> version of everything the image is built from.

    apt-cache is slow (seconds) so the answer is remembered until the apt
    package lists change."""
    memo = cache_root() / f"resolved-{arch.name}.json"
    fp = _apt_fingerprint(arch)
    try:
        saved = json.loads(memo.read_text())
        if saved.get("fingerprint") == fp and saved.get("builder") == BUILDER_VERSION:
            return saved["packages"]
    except (OSError, ValueError):
        pass
    versions = _resolve_packages(arch)
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"fingerprint": fp, "builder": BUILDER_VERSION,
                               "packages": versions}, indent=1))
    os.replace(tmp, memo)
    return versions


def _resolve_packages(arch: Arch) -> dict[str, str]:
    if not shutil.which("apt-cache"):
        raise PppVmError("apt-cache not found (a Debian host is needed to build the image)")
    meta = _apt_depends([arch.kernel_meta], arch).get(arch.kernel_meta, [])
    kernels = [a[0] for a in meta if a and _bare(a[0]).startswith("linux-image-")]
    if not kernels:
        raise PppVmError(f"cannot resolve {arch.kernel_meta}:{arch.deb_arch} "
                         "(for i386: dpkg --add-architecture i386 && apt-get update)")
    wanted = {_bare(kernels[0])}
    # breadth-first over the library-named dependencies of ppp and busybox
    seen: set[str] = set()
    todo = list(ROOT_PACKAGES)
    while todo:
        seen.update(todo)
        deps = _apt_depends(todo, arch)
        todo = []
        for groups in deps.values():
            for group in groups:
                real = [_bare(a) for a in group if not a.startswith("<")]
                if not real:
                    continue
                pick = real[0]
                if pick in seen or pick in todo:
                    continue
                if pick.startswith("lib") and pick not in SKIP_PACKAGES:
                    todo.append(pick)
    wanted.update(p for p in seen if p in ROOT_PACKAGES or p.startswith("lib"))
    wanted -= SKIP_PACKAGES
    versions = _apt_versions(sorted(wanted), arch)
    missing = wanted - set(versions)
    if missing:
        raise PppVmError(f"apt knows no version of {sorted(missing)} for {arch.deb_arch}"
                         + (" (dpkg --add-architecture i386 && apt-get update)"
                            if arch.name == "i386" else ""))
    return dict(sorted(versions.items()))


# --------------------------------------------------------------------------
# ELF: just enough to find PT_INTERP and DT_NEEDED


def elf_deps(data: bytes) -> tuple[str | None, list[str]]:
    if data[:4] != b"\x7fELF":
        return None, []
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        e_phoff, = struct.unpack_from(end + "Q", data, 0x20)
        e_phentsize, e_phnum = struct.unpack_from(end + "HH", data, 0x36)
    else:
        e_phoff, = struct.unpack_from(end + "I", data, 0x1C)
        e_phentsize, e_phnum = struct.unpack_from(end + "HH", data, 0x2A)
    interp = None
    loads = []
    dyn = None
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        if is64:
            p_type, _flags, p_offset, p_vaddr, _pa, p_filesz = struct.unpack_from(end + "IIQQQQ", data, off)
        else:
            p_type, p_offset, p_vaddr, _pa, p_filesz = struct.unpack_from(end + "IIIII", data, off)
        if p_type == 3:  # PT_INTERP
            interp = data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
        elif p_type == 1:  # PT_LOAD
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:  # PT_DYNAMIC
            dyn = (p_offset, p_filesz)
    if dyn is None:
        return interp, []
    fmt, size = (end + "qQ", 16) if is64 else (end + "iI", 8)
    needed_off, strtab = [], None
    for off in range(dyn[0], dyn[0] + dyn[1], size):
        tag, val = struct.unpack_from(fmt, data, off)
        if tag == 0:
            break
        if tag == 1:
            needed_off.append(val)
        elif tag == 5:
            strtab = val
    if strtab is None:
        return interp, []
    for vaddr, offset, filesz in loads:  # strtab address -> file offset
        if vaddr <= strtab < vaddr + filesz:
            base = strtab - vaddr + offset
            break
    else:
        return interp, []
    names = []
    for o in needed_off:
        s = data[base + o:data.index(b"\0", base + o)]
        names.append(s.decode())
    return interp, names


# --------------------------------------------------------------------------
# cpio (newc) writer


class Cpio:
    """Write a newc cpio archive, as the kernel's initramfs unpacker reads."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.ino = 1000

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev=(0, 0), nlink=1) -> None:
        name = name.lstrip("/") or "."
        namez = name.encode() + b"\0"
        self.ino += 1
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
            len(namez), 0))
        self.buf += hdr.encode() + namez
        self.buf += b"\0" * (-len(self.buf) % 4)
        self.buf += data
        self.buf += b"\0" * (-len(self.buf) % 4)

    def dir(self, name: str, mode=0o755) -> None:
        self._entry(name, 0o040000 | mode, nlink=2)

    def file(self, name: str, data: bytes | str, mode=0o644) -> None:
        if isinstance(data, str):
            data = data.encode()
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def chardev(self, name: str, major: int, minor: int, mode=0o600) -> None:
        self._entry(name, 0o020000 | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        self.buf += b"\0" * (-len(self.buf) % 512)
        return bytes(self.buf)


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/".join(parts[:i + 1]) for i in range(len(parts))]


# --------------------------------------------------------------------------
# the VM's /init


INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH=/lib/@MA@:/usr/lib/@MA@
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /run /var/run /var/lock /tmp
mount -t devpts devpts /dev/pts
exec >/dev/ttyS0 2>&1 </dev/null
for m in @MODULES@; do
    [ -f /lib/modules/ppp/$m.ko ] && insmod /lib/modules/ppp/$m.ko 2>/dev/null
done
[ -c /dev/ppp ] || echo "PPPVM: no /dev/ppp"
ip link set lo up
for t in /dev/ttyS1 /dev/ttyS2 /dev/ttyS3; do stty -F $t raw -echo 115200 2>/dev/null; done
# control channel: each line from the host is a shell command
( exec 3</dev/ttyS3; while read -r line <&3; do sh -c "$line"; done ) &
[ -x /scenario/pre.sh ] && /scenario/pre.sh
echo "PPPVM: $(uname -r) $(uname -m) $(pppd --version 2>&1 | head -n1)"
if [ -f /etc/ppp/peers/pppvm-peer ]; then
    mkfifo /tmp/peerlog
    ( while IFS= read -r l; do echo "PEER| $l"; done </tmp/peerlog ) &
    ( pppd call pppvm-peer logfile /tmp/peerlog & echo $! >/tmp/peer.pid
      wait $!; echo "PEER-EXIT=$?"; touch /tmp/peer.done ) &
fi
echo "PPPVM: starting pppd"
pppd call pppvm &
pid=$!
echo $pid >/tmp/pppd.pid
wait $pid
rc=$?
echo "PPPD-EXIT=$rc"
if [ -f /etc/ppp/peers/pppvm-peer ]; then
    n=0
    while [ ! -f /tmp/peer.done ] && [ $n -lt @PEERWAIT@ ]; do sleep 1; n=$((n+1)); done
fi
sleep 0.2
echo "PPPVM: poweroff"
poweroff -f
"""

DEVICE_OPTIONS = ["115200", "local", "nocrtscts", "nodetach", "debug"]


@dataclasses.dataclass
class VmImage:
    arch: Arch
    dir: Path
    kernel: Path
    initrd: Path
    manifest: dict


def build_image(arch: str | Arch = "amd64", *, force=False) -> VmImage:
    """Build (or find in the cache) the kernel + base initramfs for `arch`."""
    a = resolve_arch(arch) if isinstance(arch, str) else arch
    root = cache_root()
    try:
        versions = resolve_packages(a)
    except (PppVmError, subprocess.SubprocessError, OSError) as exc:
        # offline / no apt lists: fall back to the newest cached image
        cached = sorted(root.glob(f"image-{a.name}-*/manifest.json"),
                        key=lambda p: p.stat().st_mtime)
        if cached and not force:
            _log(f"apt resolution failed ({str(exc).splitlines()[0]}); using cached image")
            return _load_image(a, cached[-1].parent)
        raise
    key = hashlib.sha256(json.dumps([BUILDER_VERSION, INIT_SCRIPT, PPP_MODULES, a.name,
                                     versions], sort_keys=True).encode()).hexdigest()[:16]
    dest = root / f"image-{a.name}-{key}"
    if (dest / "manifest.json").exists() and not force:
        return _load_image(a, dest)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time per cache
        if (dest / "manifest.json").exists() and not force:
            return _load_image(a, dest)
        img = _build(a, versions, dest)
        for old in root.glob(f"image-{a.name}-*"):  # superseded images
            if old != dest:
                shutil.rmtree(old, ignore_errors=True)
        return img


def _build(a: Arch, versions: dict[str, str], dest: Path) -> VmImage:
    root = dest.parent
    _log(f"building {a.name} image into {dest}")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
        tmpd = Path(tmp)
        debs = tmpd / "debs"
        debs.mkdir()
        _run(["apt-get", "download", "-q"] + [f"{_qual(p, a)}={v}" for p, v in versions.items()],
             cwd=debs)
        staging = tmpd / "root"
        staging.mkdir()
        for deb in sorted(debs.glob("*.deb")):
            if deb.name.startswith("linux-image-"):
                # only the kernel and the PPP modules are needed: extract all
                # (dpkg -x has no filter) but it is the biggest package
                pass
            _run(["dpkg", "-x", str(deb), str(staging)])
        cpio, kernel, info = _assemble(a, staging)
        out = tmpd / "out"
        out.mkdir()
        shutil.copy(kernel, out / "vmlinuz")
        (out / "base.cpio").write_bytes(cpio)
        manifest = {"arch": a.name, "packages": versions, "builder": BUILDER_VERSION,
                    "built": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(out, dest)
    _log(f"built {a.name} image in {time.monotonic() - t0:.1f}s "
         f"(kernel {info['kernel_version']}, initramfs {len(cpio) // 1024} KiB)")
    return _load_image(a, dest)


def _load_image(a: Arch, d: Path) -> VmImage:
    manifest = json.loads((d / "manifest.json").read_text())
    return VmImage(a, d, d / "vmlinuz", d / "base.cpio", manifest)


def _assemble(a: Arch, staging: Path) -> tuple[bytes, Path, dict]:
    kernels = sorted((staging / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise PppVmError("no /boot/vmlinuz-* in the kernel package")
    kernel = kernels[-1]
    kver = kernel.name[len("vmlinuz-"):]
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}

    def resolve(rel: str, depth=0) -> str:
        """Follow symlinks inside staging; record links; return real rel path."""
        p = staging / rel
        if p.is_symlink():
            target = os.readlink(p)
            links[rel] = target
            nxt = target.lstrip("/") if target.startswith("/") else \
                os.path.normpath(os.path.join(os.path.dirname(rel), target))
            if depth > 10:
                raise PppVmError(f"symlink loop at {rel}")
            return resolve(nxt, depth + 1)
        if not p.is_file():
            raise FileNotFoundError(rel)
        return rel

    def lookup(lib: str) -> str | None:
        for d in (f"lib/{a.multiarch}", f"usr/lib/{a.multiarch}", "lib", "usr/lib"):
            if (staging / d / lib).exists() or (staging / d / lib).is_symlink():
                return f"{d}/{lib}"
        return None

    missing: list[str] = []
    todo: list[str] = list(PPP_BINARIES)
    plugins = sorted(str(p.relative_to(staging)) for p in
                     (staging / "usr/lib/pppd").glob("*/*.so"))
    todo += plugins
    done: set[str] = set()
    while todo:
        rel = todo.pop()
        if rel in done:
            continue
        done.add(rel)
        real = resolve(rel)
        data = (staging / real).read_bytes()
        files[real] = data
        interp, needed = elf_deps(data)
        if interp:
            todo.append(interp.lstrip("/"))
        for n in needed:
            found = lookup(n)
            if found is None:
                if rel not in plugins:  # a plugin we cannot satisfy is not fatal
                    missing.append(f"{n} (needed by {rel})")
                continue
            todo.append(found)
    if missing:
        raise PppVmError("shared libraries not found in the packages: " + ", ".join(missing))

    busybox = staging / "bin/busybox"
    if not busybox.exists():
        raise PppVmError("busybox-static did not provide /bin/busybox")

    modules: dict[str, bytes] = {}
    moddir = staging / "lib/modules" / kver
    if not moddir.exists():
        moddir = staging / "usr/lib/modules" / kver
    for name in PPP_MODULES:
        for ext, dec in ((".ko", lambda b: b), (".ko.xz", lzma.decompress)):
            hits = list(moddir.rglob(name + ext))
            if hits:
                modules[name] = dec(hits[0].read_bytes())
                break
        else:
            if name not in ("ppp_synctty",):
                _log(f"module {name} not found (built in?)")
    for name in ("ppp_generic", "ppp_async"):
        if name not in modules and not _builtin(staging, kver, name):
            raise PppVmError(f"kernel module {name} not found in {kver}")

    c = Cpio()
    dirs = {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "etc/ppp", "etc/ppp/peers",
            "proc", "sys", "dev", "tmp", "run", "var", "var/run", "var/lock", "root",
            "lib", "lib/modules", "lib/modules/ppp", "scenario"}
    for path in list(files) + list(links):
        dirs.update(_parents(path))
    for d in sorted(dirs):
        c.dir(d, 0o1777 if d == "tmp" else 0o755)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3, 0o666)
    c.file("bin/busybox", busybox.read_bytes(), 0o755)
    for path, data in sorted(files.items()):
        c.file(path, data, 0o755)
    for path, target in sorted(links.items()):
        if path not in files:
            c.symlink(path, target)
    for name, data in modules.items():
        c.file(f"lib/modules/ppp/{name}.ko", data)
    init = (INIT_SCRIPT.replace("@MA@", a.multiarch)
            .replace("@MODULES@", " ".join(PPP_MODULES)).replace("@PEERWAIT@", "30"))
    c.file("init", init, 0o755)
    c.file("etc/ppp/options", "# pppvm: empty on purpose; scenarios say everything\n")
    c.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    c.file("etc/group", "root:x:0:\n")
    c.file("etc/hosts", "127.0.0.1 localhost\n")
    c.file("etc/hostname", "pppvm\n")
    data = c.finish()
    info = {"kernel_version": kver, "modules": sorted(modules),
            "files": len(files) + len(links), "plugins": plugins}
    return data, kernel, info


def _builtin(staging: Path, kver: str, name: str) -> bool:
    for base in ("lib/modules", "usr/lib/modules"):
        p = staging / base / kver / "modules.builtin"
        if p.exists() and re.search(rf"/{name}\.ko\b", p.read_text()):
            return True
    return False


# --------------------------------------------------------------------------
# running a scenario


def _options_file(options: Iterable[str]) -> str:
    return "".join(str(o).rstrip("\n") + "\n" for o in options)


def scenario_cpio(options: Sequence[str], files: Mapping[str, str | bytes] | None,
                  peer_options: Sequence[str] | None, device_options: Sequence[str],
                  peer_device_options: Sequence[str]) -> bytes:
    c = Cpio()
    c.dir("etc")
    c.dir("etc/ppp")
    c.dir("etc/ppp/peers")
    c.file("etc/ppp/peers/pppvm",
           "# device options (pppvm)\n/dev/ttyS1\n" + _options_file(device_options)
           + "logfd 1\n# scenario\n" + _options_file(options))
    if peer_options is not None:
        c.file("etc/ppp/peers/pppvm-peer",
               "# device options (pppvm)\n/dev/ttyS2\n" + _options_file(peer_device_options)
               + "# scenario\n" + _options_file(peer_options))
    made = {"etc", "etc/ppp", "etc/ppp/peers"}
    for path, data in (files or {}).items():
        rel = path.lstrip("/")
        for d in _parents(rel):
            if d not in made:
                c.dir(d)
                made.add(d)
        mode = 0o755 if rel.startswith("scenario/") or rel.endswith(".sh") \
            or rel in ("etc/ppp/ip-up", "etc/ppp/ip-down", "etc/ppp/auth-up",
                       "etc/ppp/auth-down", "etc/ppp/ipv6-up", "etc/ppp/ipv6-down") else 0o600
        c.file(rel, data, mode)
    return c.finish()


_LIVE: "set[PppdVM]" = set()
_KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\] ")


def _atexit_cleanup() -> None:
    for vm in list(_LIVE):
        try:
            vm.close()
        except Exception:
            pass


atexit.register(_atexit_cleanup)


class _Bridge(threading.Thread):
    """Copies bytes between two fds, recording them; survives the pty's
    client closing and reopening (we hold the slave open ourselves)."""

    def __init__(self, a: int, b: int, names: tuple[str, str], wire: list) -> None:
        super().__init__(daemon=True, name="pppvm-bridge")
        self.fds = (a, b)
        self.names = names
        self.wire = wire
        self.stop_r, self.stop_w = os.pipe()
        self.dropped = 0
        self.lock = threading.Lock()   # one writer at a time (inject)
        for fd in self.fds:
            os.set_blocking(fd, False)

    def run(self) -> None:
        a, b = self.fds
        peer = {a: b, b: a}
        label = {a: f"{self.names[0]}>{self.names[1]}", b: f"{self.names[1]}>{self.names[0]}"}
        try:
            while True:
                r, _, _ = select.select([a, b, self.stop_r], [], [], 1.0)
                if self.stop_r in r:
                    return
                for fd in r:
                    try:
                        data = os.read(fd, 4096)
                    except BlockingIOError:
                        continue
                    except OSError:  # pty master with no slave open: EIO
                        time.sleep(0.01)
                        continue
                    if not data:
                        return
                    with self.lock:
                        self.wire.append((time.monotonic(), label[fd], data))
                        self._write(peer[fd], data)
        except (OSError, ValueError):
            return

    def _write(self, fd: int, data: bytes) -> None:
        deadline = time.monotonic() + 2.0
        while data:
            try:
                n = os.write(fd, data)
                data = data[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:  # nobody reads: drop, like a line
                    self.dropped += len(data)
                    return
                select.select([], [fd], [], 0.05)

    def stop(self) -> None:
        try:
            os.write(self.stop_w, b"x")
        except OSError:
            pass
        self.join(timeout=3)
        for fd in (self.stop_r, self.stop_w):
            try:
                os.close(fd)
            except OSError:
                pass


def _split_log(console: str, peer: bool) -> str:
    """The main pppd's lines of the console (or the peer's, prefix removed).
    pppd writes a log line and its newline in two writes, so the peer's
    echo can land between them: "local  IP address 10.0.0.1PEER| local  IP
    address 10.0.0.2" is a line of each (the main one's newline follows as
    an empty line)."""
    out = []
    for line in console.splitlines():
        head, *peers = line.split("PEER| ")
        if peers:
            if peer:
                out.extend(peers)
            elif head and not _KERNEL_LINE.match(head):
                out.append(head)
        elif not peer and not _KERNEL_LINE.match(line):
            out.append(line)
    return "\n".join(out) + ("\n" if out else "")


class PppdVM:
    """pppd in a VM.  Use as a context manager:

        with PppdVM(["noauth", "lcp-echo-interval 1"]) as vm:
            open(vm.pty_path) ...
            vm.wait_log(r"sent \\[LCP ConfReq", timeout=30)
            code = vm.wait_exit(timeout=60)

    options       pppd option lines of the scenario (after the device options)
    files         {path in VM: content} e.g. {"/etc/ppp/chap-secrets": "..."};
                  files under /scenario/ or ending .sh are executable;
                  /scenario/pre.sh runs before pppd starts
    peer_options  pair mode: run a second pppd on ttyS2 with these options;
                  the host bridges the two lines (no pty then)
    device_options  what follows /dev/ttyS1 (default: 115200 local nocrtscts
                  nodetach debug); `logfd 1` is always added
    timeout       hard limit on the VM's life (seconds); it is killed then
    """

    def __init__(self, options: Sequence[str] = (), files: Mapping[str, str | bytes] | None = None,
                 *, arch: str = "amd64", peer_options: Sequence[str] | None = None,
                 device_options: Sequence[str] = DEVICE_OPTIONS,
                 peer_device_options: Sequence[str] = DEVICE_OPTIONS,
                 timeout: float = 180.0, memory_mb: int = 192,
                 accel: str | None = None, image: VmImage | None = None,
                 workdir: str | os.PathLike | None = None) -> None:
        self.options = list(options)
        self.files = dict(files or {})
        self.arch = resolve_arch(arch)
        self.peer_options = None if peer_options is None else list(peer_options)
        self.device_options = list(device_options)
        self.peer_device_options = list(peer_device_options)
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.accel = accel or os.environ.get("USERPPP_VM_ACCEL", "tcg")
        self.image = image
        self._workdir_arg = workdir
        self.workdir: Path | None = None
        self.pty_path: str | None = None
        self.socket_path: str | None = None
        self.console_path: Path | None = None
        self.wire: list[tuple[float, str, bytes]] = []
        self.started_at: float | None = None
        self._proc: subprocess.Popen | None = None
        self._socks: list[socket.socket] = []
        self._ctl: socket.socket | None = None
        self._bridge: _Bridge | None = None
        self._pty_fds: list[int] = []
        self._killer: threading.Timer | None = None
        self._closed = False
        self._own_workdir = False

    # -- lifecycle -------------------------------------------------------
    def __enter__(self) -> "PppdVM":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> "PppdVM":
        qemu = shutil.which(self.arch.qemu)
        if not qemu:
            raise PppVmError(f"{self.arch.qemu} not found (apt-get install qemu-system-x86)")
        if self.image is None:
            self.image = build_image(self.arch)
        if self._workdir_arg:
            self.workdir = Path(self._workdir_arg)
            self.workdir.mkdir(parents=True, exist_ok=True)
        else:  # short path: unix socket paths must stay under 108 bytes
            self.workdir = Path(tempfile.mkdtemp(prefix="pppvm-", dir="/tmp"))
            self._own_workdir = True
        w = self.workdir
        for name in ("ppp.sock", "peer.sock", "ctl.sock"):
            if len(str(w / name)) >= 100:
                raise PppVmError(f"workdir path too long for a unix socket: {w}")
            (w / name).unlink(missing_ok=True)
        initrd = w / "initrd.cpio"
        with open(initrd, "wb") as f:
            f.write(self.image.initrd.read_bytes())
            f.write(scenario_cpio(self.options, self.files, self.peer_options,
                                  self.device_options, self.peer_device_options))
        self.console_path = w / "console.log"
        self.console_path.write_bytes(b"")
        # `timeout` kills qemu even if this Python process dies without cleanup
        cmd = ["timeout", "-s", "KILL", str(max(1, int(self.timeout))),
               qemu, "-nodefaults", "-no-user-config", "-display", "none",
               "-machine", "pc", "-m", str(self.memory_mb), "-smp", "1",
               "-no-reboot", "-kernel", str(self.image.kernel), "-initrd", str(initrd),
               "-append", "console=ttyS0,115200 quiet loglevel=3 panic=-1 "
                          "mitigations=off 8250.nr_uarts=4 random.trust_cpu=on",
               "-chardev", f"file,id=con,path={self.console_path}", "-serial", "chardev:con",
               "-chardev", f"socket,id=ppp,path={w / 'ppp.sock'},server=on,wait=off",
               "-serial", "chardev:ppp"]
        if self.peer_options is not None:
            cmd += ["-chardev", f"socket,id=peer,path={w / 'peer.sock'},server=on,wait=off",
                    "-serial", "chardev:peer"]
        else:
            cmd += ["-serial", "null"]
        cmd += ["-chardev", f"socket,id=ctl,path={w / 'ctl.sock'},server=on,wait=off",
                "-serial", "chardev:ctl"]
        for acc in self.accel.split(","):
            cmd += ["-accel", acc]
        self.qemu_cmd = cmd
        _LIVE.add(self)
        self.started_at = time.monotonic()
        self._qemu_err = open(w / "qemu.stderr", "wb")
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._qemu_err,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        self._killer = threading.Timer(self.timeout, self._kill_qemu)
        self._killer.daemon = True
        self._killer.start()
        try:
            self._connect()
        except BaseException:
            self.close()
            raise
        return self

    def _connect_sock(self, path: Path) -> socket.socket:
        deadline = time.monotonic() + 20
        while True:
            if self._proc.poll() is not None:
                raise PppVmError(f"qemu exited ({self._proc.returncode}): "
                                 + (self.workdir / "qemu.stderr").read_text(errors="replace")[-2000:])
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(str(path))
                self._socks.append(s)
                return s
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise PppVmError(f"qemu did not create {path}")
                time.sleep(0.02)

    def _connect(self) -> None:
        w = self.workdir
        ppp = self._connect_sock(w / "ppp.sock")
        self._ctl = self._connect_sock(w / "ctl.sock")
        if self.peer_options is not None:
            peer = self._connect_sock(w / "peer.sock")
            self._bridge = _Bridge(ppp.fileno(), peer.fileno(), ("pppd", "peer"), self.wire)
        else:
            master, slave = os.openpty()
            tty.setraw(slave)
            self._pty_fds = [master, slave]
            link = w / "pty"
            link.unlink(missing_ok=True)
            link.symlink_to(os.ttyname(slave))
            self.pty_path = str(link)
            self.pty_name = os.ttyname(slave)
            self._bridge = _Bridge(ppp.fileno(), master, ("pppd", "host"), self.wire)
        self.socket_path = str(w / "ppp.sock")
        self._bridge.start()

    def _kill_qemu(self) -> None:
        p = self._proc
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._killer:
            self._killer.cancel()
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.terminate()
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kill_qemu()
                self._proc.wait(timeout=5)
            except OSError:
                pass
        if self._bridge:
            self._bridge.stop()
        for s in self._socks:
            s.close()
        for fd in self._pty_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        if getattr(self, "_qemu_err", None):
            self._qemu_err.close()
        _LIVE.discard(self)
        if self._own_workdir and self.workdir and os.environ.get("PPPVM_KEEP") != "1":
            # keep the logs readable after close: copy before removing
            self._final_console = self._read_console()
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- logs ------------------------------------------------------------
    def _read_console(self) -> str:
        if getattr(self, "_final_console", None) is not None:
            return self._final_console
        if self.console_path is None or not self.console_path.exists():
            return ""
        return self.console_path.read_bytes().decode("utf-8", "replace").replace("\r", "")

    def console_text(self) -> str:
        """Everything on the VM's console (kernel, /init, pppd, peer)."""
        return self._read_console()

    def log_text(self, peer: bool = False) -> str:
        """pppd's log (or the peer pppd's, prefix removed)."""
        return _split_log(self._read_console(), peer)

    def wait_log(self, pattern: str | re.Pattern, timeout: float = 30.0,
                 peer: bool = False) -> re.Match:
        """Wait until `pattern` (re.search, MULTILINE) matches pppd's log."""
        rx = re.compile(pattern, re.M) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text(peer)
            m = rx.search(text)
            if m:
                return m
            if not self.running and not rx.search(self.log_text(peer)):
                raise PppVmError(f"VM stopped before {rx.pattern!r} appeared; log:\n"
                                 + self.console_text()[-3000:])
            if time.monotonic() > deadline:
                raise TimeoutError(f"{rx.pattern!r} not in pppd log after {timeout}s; log:\n"
                                   + self.console_text()[-3000:])
            time.sleep(0.05)

    def wait_exit(self, timeout: float = 60.0, peer: bool = False) -> int:
        """pppd's exit status (from /init's PPPD-EXIT= marker)."""
        m = self.wait_log(r"^PEER-EXIT=(\d+)" if peer else r"^PPPD-EXIT=(\d+)", timeout)
        return int(m.group(1))

    def exit_code(self, peer: bool = False) -> int | None:
        m = re.search(r"^PEER-EXIT=(\d+)" if peer else r"^PPPD-EXIT=(\d+)",
                      self.log_text(), re.M)
        return int(m.group(1)) if m else None

    def wait_poweroff(self, timeout: float = 30.0) -> int | None:
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    # -- control ---------------------------------------------------------
    def vm_exec(self, command: str) -> None:
        """Run a shell command in the VM (output goes to the console log)."""
        if "\n" in command:
            raise ValueError("one line only")
        self._ctl.sendall(command.encode() + b"\n")

    def kill_pppd(self, sig: str = "TERM", peer: bool = False) -> None:
        pidfile = "/tmp/peer.pid" if peer else "/tmp/pppd.pid"
        self.vm_exec(f"kill -{sig} $(cat {pidfile})")

    # -- wire ------------------------------------------------------------
    def inject(self, data: bytes) -> None:
        """Write raw bytes to pppd's line as if the host had sent them
        (between the bridge's own writes; recorded as "inject>pppd")."""
        bridge = self._bridge
        with bridge.lock:
            self.wire.append((time.monotonic(), "inject>pppd", data))
            bridge._write(bridge.fds[0], data)

    def wire_bytes(self, direction: str) -> bytes:
        """All bytes seen on the line in one direction, e.g. 'pppd>host'."""
        return b"".join(d for _, lab, d in list(self.wire) if lab == direction)


# --------------------------------------------------------------------------
# CLI


def _cli_build(args) -> int:
    t0 = time.monotonic()
    img = build_image(args.arch, force=args.force)
    print(f"{img.dir}  kernel {img.manifest['kernel_version']}  "
          f"({time.monotonic() - t0:.1f}s)")
    return 0


def _cli_run(args, peer: bool) -> int:
    opts = args.options
    if opts and opts[0] == "--":
        opts = opts[1:]
    files = {}
    for spec in args.file or []:
        vm_path, _, host_path = spec.partition("=")
        files[vm_path] = Path(host_path).read_bytes()
    peer_opts = shlex.split(args.peer) if peer else None
    with PppdVM(opts, files, arch=args.arch, peer_options=peer_opts,
                timeout=args.timeout + 30) as vm:
        if vm.pty_path:
            print(f"pppvm: pty {vm.pty_path} -> {vm.pty_name}", file=sys.stderr, flush=True)
        printed = 0
        deadline = time.monotonic() + args.timeout
        code = None
        while time.monotonic() < deadline:
            text = vm.console_text()
            if len(text) > printed:
                sys.stdout.write(text[printed:])
                sys.stdout.flush()
                printed = len(text)
            code = vm.exit_code()
            if code is not None and (not peer or vm.exit_code(peer=True) is not None
                                     or not vm.running):
                break
            if not vm.running:
                break
            time.sleep(0.1)
        vm.wait_poweroff(5)
        text = vm.console_text()
        sys.stdout.write(text[printed:])
        if code is None:
            print("pppvm: timeout, pppd did not exit", file=sys.stderr)
            return 124
        return code


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pppvm", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or verify cached) VM image")
    b.add_argument("--arch", default="amd64")
    b.add_argument("--force", action="store_true")
    for name in ("run", "pair"):
        r = sub.add_parser(name, help="run pppd in the VM and print its log" if name == "run"
                           else "run two pppds in one VM, linked to each other")
        r.add_argument("--arch", default="amd64")
        r.add_argument("--timeout", type=float, default=60.0)
        r.add_argument("--file", action="append", metavar="VMPATH=HOSTPATH")
        if name == "pair":
            r.add_argument("--peer", required=True, help="options of the second pppd")
        r.add_argument("options", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            return _cli_build(args)
        return _cli_run(args, peer=args.cmd == "pair")
    except PppVmError as exc:
        print(f"pppvm: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
