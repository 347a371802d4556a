"""The image build (vm/image/provision.sh): its GPU driver step, the modinfo gate, apt's
lock wait, Triton's compiler, offline serving and the journal shipped to Cloud Logging.

The driver step runs for real in bash, with the system commands it calls (apt-get,
depmod, modinfo, systemctl) replaced by stubs on PATH that record their arguments and
answer like the real tools: ``modinfo -k KERNEL nvidia`` fails when no module is
installed for KERNEL, and ``-F signer`` prints nothing for an unsigned module.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROVISION = REPO / "vm" / "image" / "provision.sh"
KERNELS = ("6.8.0-1012-gcp", "6.8.0-1015-gcp", "6.8.0-1009-gcp")  # boots the newest

STUBS = {
    # Records each call with the dpkg lock timeout apt would read from APT_CONFIG.
    "apt-get": """
timeout=$(sed -n 's/^DPkg::Lock::Timeout "\\([0-9]*\\)";$/\\1/p' "${APT_CONFIG:-/dev/null}")
echo "apt-get lock=${timeout:-none} $*" >>"$CALLS"
""",
    "depmod": 'echo "depmod $*" >>"$CALLS"',
    "systemctl": 'echo "systemctl $*" >>"$CALLS"',
    # STUB_MODULE: signed | unsigned | missing
    "modinfo": """
echo "modinfo $*" >>"$CALLS"
[ "$STUB_MODULE" = missing ] && { echo "modinfo: ERROR: Module nvidia not found." >&2; exit 1; }
case " $* " in
  *" -F signer "*) [ "$STUB_MODULE" = signed ] && echo "Canonical Ltd. Kernel Module Signing" ;;
  *) echo "filename: /lib/modules/$2/kernel/nvidia-580srv/nvidia.ko" ;;
esac
exit 0
""",
}


def run_driver_step(tmp_path: Path, module: str, driver: str = "580") -> tuple[int, str, list[str]]:
    stubs, boot = tmp_path / "bin", tmp_path / "boot"
    stubs.mkdir()
    boot.mkdir()
    for kernel in KERNELS:
        (boot / f"vmlinuz-{kernel}").write_text("")
    for name, body in STUBS.items():
        stub = stubs / name
        stub.write_text("#!/bin/sh\n" + body)
        stub.chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    script = f"source {shlex.quote(str(PROVISION))}; quiet_apt; install_nvidia {driver} false"
    run = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            "PATH": f"{stubs}:/usr/bin:/bin",
            "CALLS": str(calls),
            "STUB_MODULE": module,
            "YOYO_BOOT_DIR": str(boot),
            "YOYO_CONSOLE": str(tmp_path / "console"),  # not a tty: not written
            "TMPDIR": str(tmp_path),  # quiet_apt's APT_CONFIG file
        },
    )
    return run.returncode, run.stdout + run.stderr, calls.read_text().splitlines()


def test_the_driver_step_installs_signed_precompiled_modules_for_the_boot_kernel(tmp_path):
    status, output, calls = run_driver_step(tmp_path, "signed")
    assert status == 0, output
    installs = [c for c in calls if c.startswith("apt-get") and " install " in c]
    assert len(installs) == 1
    packages = installs[0].split()[-4:]
    assert packages == [
        "linux-modules-nvidia-580-server-gcp",
        "linux-modules-nvidia-580-server-6.8.0-1015-gcp",
        "nvidia-headless-no-dkms-580-server",
        "nvidia-utils-580-server",
    ]
    assert "depmod 6.8.0-1015-gcp" in calls
    assert "modinfo -k 6.8.0-1015-gcp nvidia" in calls
    assert "signed by Canonical Ltd. Kernel Module Signing" in output


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        ("missing", "no nvidia kernel module for 6.8.0-1015-gcp"),
        ("unsigned", "the nvidia module for 6.8.0-1015-gcp is not signed"),
    ],
)
def test_the_build_fails_unless_modinfo_finds_a_signed_module(tmp_path, module, reason):
    status, output, _ = run_driver_step(tmp_path, module)
    assert status != 0
    assert f"YOYO-IMAGE-BUILD: FAILED ({reason}" in output


def test_every_apt_call_waits_for_the_dpkg_lock(tmp_path):
    status, output, calls = run_driver_step(tmp_path, "signed")
    assert status == 0, output
    apt_calls = [c for c in calls if c.startswith("apt-get")]
    assert apt_calls and all(c.startswith("apt-get lock=600 ") for c in apt_calls), apt_calls
    assert "systemctl stop apt-daily.timer apt-daily-upgrade.timer" in calls


def _main_steps() -> list[str]:
    text = PROVISION.read_text(encoding="utf-8")
    body = re.search(r"^main\(\) \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    assert body
    return re.findall(r"^  ([a-z_]+)\b", body.group(1), re.MULTILINE)


def test_the_build_never_depends_on_detecting_a_gpu():
    text = PROVISION.read_text(encoding="utf-8")
    assert "ubuntu-drivers" not in text  # installs only for PCI devices it detects
    steps = _main_steps()
    assert steps.index("quiet_apt") < steps.index("install_base") < steps.index("install_nvidia")
    assert steps.index("install_nvidia") < steps.index("finish_image")


def test_triton_can_compile_and_vllm_serves_offline():
    text = PROVISION.read_text(encoding="utf-8")
    base = re.search(r"^install_base\(\) \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    assert base and "build-essential" in base.group(1) and "python3-dev" in base.group(1)
    yoyo = re.search(r"^install_yoyo\(\) \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    assert yoyo
    lines = yoyo.group(1).splitlines()
    pip_vllm = next(i for i, line in enumerate(lines) if '"vllm==' in line)
    assert lines[pip_vllm + 1].strip() == "warm_up_vllm"
    unit = (REPO / "vm" / "vllm.service").read_text(encoding="utf-8")
    for variable in ("HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "VLLM_NO_USAGE_STATS=1"):
        assert f"\nEnvironment={variable}\n" in unit, variable


def test_the_journal_is_shipped_to_cloud_logging():
    text = PROVISION.read_text(encoding="utf-8")
    assert "install_ops_agent" in _main_steps()
    ops = re.search(r"^install_ops_agent\(\) \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    assert ops
    assert '"${script}" --also-install' in ops.group(1)
    assert "type: systemd_journald" in ops.group(1)
    assert "receivers: [journald]" in ops.group(1)
    assert "systemctl enable google-cloud-ops-agent" in ops.group(1)
