"""Fixtures for interop tests against real peers (pppd in a VM, slirp).

- `pppd_vm(options, files=None, **kw)`: start pppd in a VM (tools/pppvm.py
  PppdVM, already started); all are closed at teardown and their console
  printed if the test failed.
- `run_pair(pppd_opts, userppp_args, files=None, during=None, timeout=60)`:
  pppd in the VM against userppp on the pty; returns peers.PairResult.
- `slirp_peer(args=())`: slirp-fullbolt -P on a host pty (peers.SlirpPeer).

Tests needing the VM skip when qemu is missing, except in CI (CI=true),
where a broken harness must fail.  Every interop test has a hard time
limit (marker `interop_timeout(seconds)`, default 240 s): on expiry the
stacks are dumped and the test process exits.
"""
from __future__ import annotations

import faulthandler
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402
from peers import pppvm  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DEFAULT_TEST_LIMIT = 240


def pytest_configure(config):
    config.addinivalue_line("markers", "interop_timeout(seconds): hard limit of one interop test")


def _missing_or_skip(what: str, hint: str):
    msg = f"{what} not available: {hint}"
    if IN_CI:
        pytest.fail(f"{msg} (CI=true: the interop harness must work in CI)", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(autouse=True)
def _interop_hard_timeout(request):
    marker = request.node.get_closest_marker("interop_timeout")
    limit = marker.args[0] if marker else DEFAULT_TEST_LIMIT
    faulthandler.dump_traceback_later(limit, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def vm_image_factory():
    """arch -> built (cached) VmImage; skips/fails when the VM can't be had."""
    images = {}

    def get(arch: str = "amd64") -> pppvm.VmImage:
        a = pppvm.resolve_arch(arch)
        if a.name not in images:
            if not shutil.which(a.qemu):
                _missing_or_skip(a.qemu, "run .ci/install-interop.sh")
            try:
                images[a.name] = pppvm.build_image(a)
            except pppvm.PppVmError as exc:
                if IN_CI:
                    raise
                pytest.skip(f"cannot build the {a.name} VM image: {exc}")
        return images[a.name]
    return get


@pytest.fixture
def pppd_vm(request, vm_image_factory):
    """Factory: pppd_vm(options, files=None, arch="amd64", **PppdVM kwargs)."""
    vms: list[pppvm.PppdVM] = []

    def make(options=(), files=None, arch: str = "amd64", **kw) -> pppvm.PppdVM:
        kw.setdefault("image", vm_image_factory(arch))
        vm = pppvm.PppdVM(options, files, arch=arch, **kw)
        vms.append(vm)
        return vm.start()
    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for vm in vms:
        text = vm.console_text()
        vm.close()
        if failed:
            print(f"\n--- VM console ({vm.arch.name}) ---\n{text or vm.console_text()}")


@pytest.fixture
def run_pair(pppd_vm):
    """run_pair(pppd_opts, userppp_args, files=None, *, during=None, timeout=60, ...)."""
    def run(pppd_opts, userppp_args, files=None, **kw):
        kw.setdefault("make_vm", pppd_vm)
        return peers.run_pair(pppd_opts, userppp_args, files, **kw)
    return run


@pytest.fixture
def slirp_peer():
    if not shutil.which("slirp-fullbolt"):
        _missing_or_skip("slirp-fullbolt", "apt-get install slirp (.ci/install-interop.sh)")
    made = []

    def make(args=()):
        p = peers.SlirpPeer(args)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
