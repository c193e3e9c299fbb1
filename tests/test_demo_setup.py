"""The demo's set-up check on a machine without its programs: the install, or the exact command.

The machine is a PATH and a root directory made by the test, holding only the programs it gives
them; `apt-get` is a script of the test that writes down how it was called (and, like the real
one, brings the programs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import system

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ("ssh-keygen", "mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump")
"""The demo's programs the prepared machine has: all but nginx and sshd."""


def program(directory: Path, name: str, body: str = "exit 0") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path: Path) -> system.Machine:
    """A root filesystem with the demo's programs but nginx and sshd, and a PATH into it."""
    root = tmp_path / "root"
    for name in PROGRAMS:
        program(root / "usr" / "bin", name)
    (root / "usr" / "sbin").mkdir(parents=True)
    return system.Machine(path=str(root / "usr" / "bin"), root=root)


def test_without_installing_it_names_what_is_missing_and_the_exact_command(
    machine: system.Machine,
) -> None:
    problem = system.set_up(system.DEMO, purpose="The demo", machine=machine, allow_install=False)
    sudo = "" if os.geteuid() == 0 else "sudo "
    assert problem == (
        "The demo needs nginx (nginx), sshd (openssh-server); install with: "
        f"{sudo}apt-get update && "
        f"{sudo}apt-get install -y --no-install-recommends nginx openssh-server"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="installs only as root")
def test_as_root_it_runs_apt_get_update_then_install_of_the_missing_packages(
    machine: system.Machine, tmp_path: Path
) -> None:
    calls = tmp_path / "apt-get.calls"
    sbin = machine.root / "usr" / "sbin"
    fake_apt = tmp_path / "fake-bin"
    program(
        fake_apt,
        "apt-get",
        f'echo "$DEBIAN_FRONTEND $*" >> {calls}\n'
        f'case "$*" in install*) printf "#!/bin/sh\\n" > {sbin}/nginx; '
        f"/bin/cp {sbin}/nginx {sbin}/sshd; /bin/chmod 755 {sbin}/nginx {sbin}/sshd;; esac",
    )
    with_apt = system.Machine(path=f"{fake_apt}{os.pathsep}{machine.path}", root=machine.root)

    problem = system.set_up(system.DEMO, purpose="The demo", machine=with_apt, allow_install=True)

    assert problem is None
    assert calls.read_text().splitlines() == [
        "noninteractive update",
        "noninteractive install -y --no-install-recommends nginx openssh-server",
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="installs only as root")
def test_a_failing_install_ends_with_the_one_line_command_not_a_traceback(
    machine: system.Machine, tmp_path: Path
) -> None:
    fake_apt = tmp_path / "fake-bin"
    program(fake_apt, "apt-get", "echo 'E: Unable to locate package' >&2; exit 100")
    env = {
        **os.environ,
        "PATH": f"{fake_apt}{os.pathsep}{machine.path}",
        "SETUP_ROOT": str(machine.root),
    }
    code = (
        "import os, sys; from pathlib import Path; from devtools import system\n"
        "machine = system.Machine(os.environ['PATH'], Path(os.environ['SETUP_ROOT']))\n"
        "problem = system.set_up(system.DEMO, purpose='The demo', machine=machine)\n"
        "sys.exit(problem)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "The demo needs nginx (nginx), sshd (openssh-server); install with: apt-get update && "
        "apt-get install -y --no-install-recommends nginx openssh-server"
    )
