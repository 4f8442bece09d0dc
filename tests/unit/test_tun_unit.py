"""userppp.io.tun pieces that need no device: resolv.conf, script
arguments and environment, route reconstruction, option parsing, and the
errors raised before any device is touched."""

import os
import stat

import pytest

from userppp.config.options import OptionError
from userppp.io import tun
from userppp.io.tun import (IpScriptInfo, TunDevice, TunError, _route_args,
                            demand_placeholders, ip_script_args, ip_script_env,
                            write_resolv_conf)


def test_resolv_conf_as_pppd_writes_it(tmp_path):
    path = tmp_path / "resolv.conf"
    path.write_text("old\n")
    write_resolv_conf(str(path), "10.0.0.53", "10.0.0.54")
    assert path.read_text() == "nameserver 10.0.0.53\nnameserver 10.0.0.54\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    write_resolv_conf(str(path), "10.0.0.53", "10.0.0.53")
    assert path.read_text() == "nameserver 10.0.0.53\n"
    write_resolv_conf(str(path), "10.0.0.53", "0.0.0.0")
    assert path.read_text() == "nameserver 10.0.0.53\n"
    assert sorted(os.listdir(tmp_path)) == ["resolv.conf"], "no temp file left"


def test_resolv_conf_errors_are_one_line(tmp_path):
    with pytest.raises(TunError, match=r"^cannot write .*/nodir/resolv.conf: "):
        write_resolv_conf(str(tmp_path / "nodir" / "resolv.conf"), "10.0.0.53")
    with pytest.raises(TunError, match="invalid DNS IP address 'bogus'"):
        write_resolv_conf(str(tmp_path / "r"), "bogus")


def test_script_arguments_and_down_environment():
    info = IpScriptInfo(ifname="ppp0", device="/dev/ttyS0", speed=115200,
                        local="10.0.0.2", remote="10.0.0.1", connect_time=61,
                        bytes_sent=1000, bytes_rcvd=2000, linkname="isp")
    assert ip_script_args(info) == ["ppp0", "/dev/ttyS0", "115200", "10.0.0.2",
                                    "10.0.0.1", ""]
    env = ip_script_env(info)
    assert env["CONNECT_TIME"] == "61" and env["BYTES_SENT"] == "1000"
    assert env["BYTES_RCVD"] == "2000" and env["LINKNAME"] == "isp"
    assert "DNS1" not in env and "PEERNAME" not in env and "USEPEERDNS" not in env
    assert env["PATH"] == tun.SCRIPT_PATH and env["PPPD_PID"] == str(os.getpid())


def test_route_args_recreate_what_ip_showed():
    route = {"dst": "default", "gateway": "10.7.0.254", "dev": "eth0",
             "protocol": "dhcp", "scope": "global", "metric": 100,
             "prefsrc": "10.7.0.1", "flags": ["onlink"]}
    assert _route_args(route) == ["default", "via", "10.7.0.254", "dev", "eth0",
                                  "proto", "dhcp", "metric", "100", "src",
                                  "10.7.0.1", "onlink"]
    assert _route_args({"dst": "default", "dev": "ppp1", "scope": "link",
                        "flags": []}) == ["default", "dev", "ppp1", "scope", "link"]


def test_demand_placeholders_are_pppds():
    # pppd's ip_demand_conf: ouraddr 0x0a404040 + unit, hisaddr 0x0a707070 + unit
    assert demand_placeholders() == ("10.64.64.64", "10.112.112.112")
    assert demand_placeholders(3) == ("10.64.64.67", "10.112.112.115")


@pytest.mark.parametrize("name", ["", "x" * 16, "a/b", "a b", ".."])
def test_bad_interface_names(name):
    option = next(o for o in tun.OPTIONS if o.name == "tun")
    with pytest.raises(OptionError, match="invalid interface name"):
        option.parse(name)
    with pytest.raises(TunError, match="invalid interface name"):
        TunDevice.open(name)


def test_no_dev_net_tun(monkeypatch):
    monkeypatch.setattr(tun, "TUN_PATH", "/nonexistent/net/tun")
    with pytest.raises(TunError) as info:
        TunDevice.open("ppp0")
    assert str(info.value) == ("/nonexistent/net/tun does not exist: no TUN support "
                               "here (modprobe tun, or give the container /dev/net/tun)")


def test_missing_ip_command(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TunError, match=r"^the ip command \(iproute2\) is not installed$"):
        tun.run_ip("link")


def test_options_declared():
    names = {o.name for o in tun.OPTIONS}
    assert names == {"tun", "txqueuelen", "defaultroute", "nodefaultroute",
                     "replacedefaultroute", "noreplacedefaultroute",
                     "ip-up-script", "ip-down-script", "resolv-conf"}


def test_dev_net_tun_not_accessible(monkeypatch):
    monkeypatch.setattr(tun.os, "access", lambda path, mode: False)
    with pytest.raises(TunError) as info:
        TunDevice.open("ppp0")
    assert str(info.value).startswith("no permission to open /dev/net/tun (c")


def test_ip_down_waits_for_ip_up_and_logs_as_pppd(tmp_path, monkeypatch):
    import asyncio
    from userppp.io.tun import IpScripts
    record = tmp_path / "order"
    up = tmp_path / "ip-up"
    up.write_text(f"#!/bin/sh\nsleep 0.3\necho up >> {record}\nexit 3\n")
    down = tmp_path / "ip-down"
    down.write_text(f'#!/bin/sh\necho "down $BYTES_SENT" >> {record}\n')
    up.chmod(0o755)
    down.chmod(0o755)
    monkeypatch.setenv("USERPPP_ETC", str(tmp_path))
    lines = []
    info = IpScriptInfo(ifname="ppp0", device="/dev/ttyS0", speed=38400,
                        local="10.0.0.2", remote="10.0.0.1", bytes_sent=5)

    async def session():
        scripts = IpScripts(log=lines.append)     # paths from $USERPPP_ETC
        task = scripts.start_up(info)
        assert not task.done()
        return await task, await scripts.down(info)
    assert asyncio.run(session()) == (3, 0)
    assert record.read_text() == "up\ndown 5\n"
    assert lines[0].startswith(f"Script {up} started (pid ")
    assert lines[1].startswith(f"Script {up} finished (pid ")
    assert lines[1].endswith("), status = 0x300")
    assert lines[3].endswith("), status = 0x0")


def test_missing_scripts_are_skipped(tmp_path):
    import asyncio
    from userppp.io.tun import IpScripts
    lines = []
    info = IpScriptInfo(ifname="ppp0", device="/dev/ttyS0", speed=38400,
                        local="10.0.0.2", remote="10.0.0.1")

    async def session():
        scripts = IpScripts(str(tmp_path / "no-up"), str(tmp_path / "no-down"),
                            log=lines.append)
        return await scripts.start_up(info), await scripts.down(info)
    assert asyncio.run(session()) == (None, None)
    assert lines == []


def test_script_info_from_settings():
    from types import SimpleNamespace
    settings = SimpleNamespace(device="/dev/ttyUSB0", speed=115200, ipparam="office",
                               linkname=None)
    info = IpScriptInfo.from_settings(settings, "ppp3", "10.0.0.2", "10.0.0.1",
                                      peername="isp", dns1="10.0.0.53")
    assert ip_script_args(info) == ["ppp3", "/dev/ttyUSB0", "115200", "10.0.0.2",
                                    "10.0.0.1", "office"]
    env = ip_script_env(info)
    assert env["PEERNAME"] == "isp" and env["DNS1"] == "10.0.0.53"
    assert "LINKNAME" not in env


def test_default_txqueuelen_follows_the_line_speed():
    from userppp.io.tun import default_txqueuelen
    assert default_txqueuelen(0) == 500           # no speed: nothing paced
    assert default_txqueuelen(38400) == 2         # never below one sent + one waiting
    assert default_txqueuelen(115200) == 2
    assert default_txqueuelen(4_000_000) == 13    # 50 ms of 1500-byte packets
    assert default_txqueuelen(4_000_000, mtu=296) == 68
