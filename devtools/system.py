"""What the demo and the tests need from the system, checked in one place, installed when possible.

Each requirement is a program and the Debian package that brings it. When some are missing and
this runs as root, `apt-get update` and `apt-get install` bring them (their output shown); when it
cannot install (not root, installing turned off, apt-get failing), one line names what is missing
and the exact command to run.

Only the standard library is used, so that `make demo` can run this with the system's python3
before the virtualenv exists:

    python3 devtools/system.py demo|test

Environment: INSTALL_SYSTEM_PACKAGES=0 never installs, only names the command.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SYSTEM_DIRECTORIES = ("usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin")
"""Where programs live on Debian, searched besides PATH (sshd and mariadbd are in sbin)."""


@dataclass(frozen=True)
class Requirement:
    """A program (or, with `module`, a module of the system's Python) and its Debian package."""

    name: str
    package: str
    module: bool = False


DEMO = (
    Requirement("nginx", "nginx"),
    Requirement("sshd", "openssh-server"),
    Requirement("ssh-keygen", "openssh-client"),
    Requirement("mariadbd", "mariadb-server"),
    Requirement("mariadb-install-db", "mariadb-server"),
    Requirement("mariadb", "mariadb-client"),
    Requirement("mariadb-dump", "mariadb-client"),
    Requirement("ensurepip", "python3-venv", module=True),
)
"""What `make demo` runs: the front server, the source's SSH and MariaDB servers, the backup's
dump and restore clients, and the virtualenv's maker."""

TESTS = (*DEMO, Requirement("chromium", "chromium"))
"""What `make test` runs besides: the browser of the browser tests."""


@dataclass(frozen=True)
class Machine:
    """Where to look for programs: a PATH and a root directory (the real ones unless told)."""

    path: str
    root: Path = Path("/")

    @classmethod
    def this(cls) -> Machine:
        return cls(os.environ.get("PATH", os.defpath))

    def search_path(self) -> str:
        extra = (str(self.root / directory) for directory in SYSTEM_DIRECTORIES)
        return os.pathsep.join([self.path, *extra])

    def has(self, requirement: Requirement) -> bool:
        if requirement.module:
            return importlib.util.find_spec(requirement.name) is not None
        return shutil.which(requirement.name, path=self.search_path()) is not None

    def missing(self, requirements: Sequence[Requirement]) -> list[Requirement]:
        return [requirement for requirement in requirements if not self.has(requirement)]


def packages(requirements: Sequence[Requirement]) -> list[str]:
    """The Debian packages of these requirements, each once, in order."""
    return list(dict.fromkeys(requirement.package for requirement in requirements))


def install_command(requirements: Sequence[Requirement], *, as_root: bool) -> str:
    """The command that installs these requirements, as a person would type it."""
    sudo = "" if as_root else "sudo "
    names = " ".join(packages(requirements))
    return f"{sudo}apt-get update && {sudo}apt-get install -y --no-install-recommends {names}"


def instruction(missing: Sequence[Requirement], *, purpose: str, as_root: bool) -> str:
    """One line: what is missing and the exact command that installs it."""
    names = ", ".join(f"{requirement.name} ({requirement.package})" for requirement in missing)
    return f"{purpose} needs {names}; install with: {install_command(missing, as_root=as_root)}"


def install(package_names: Sequence[str], machine: Machine) -> bool:
    """apt-get update, then apt-get install the packages, showing what apt-get does."""
    apt_get = shutil.which("apt-get", path=machine.search_path())
    if apt_get is None:
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "PATH": machine.path}
    commands = [
        [apt_get, "update"],
        [apt_get, "install", "-y", "--no-install-recommends", *package_names],
    ]
    for command in commands:
        print("+ " + " ".join(["apt-get", *command[1:]]), flush=True)
        if subprocess.run(command, env=env, check=False).returncode != 0:
            return False
    return True


def installing_allowed() -> bool:
    return os.environ.get("INSTALL_SYSTEM_PACKAGES", "1") != "0"


def set_up(
    requirements: Sequence[Requirement],
    *,
    purpose: str,
    machine: Machine | None = None,
    allow_install: bool | None = None,
) -> str | None:
    """Install what is missing when possible; None when all is there, else the one-line
    instruction that says what is missing and how to install it."""
    machine = machine or Machine.this()
    missing = machine.missing(requirements)
    if not missing:
        return None
    as_root = os.geteuid() == 0
    allowed = installing_allowed() if allow_install is None else allow_install
    if as_root and allowed:
        print(f"{purpose} needs {', '.join(packages(missing))}: installing them.", flush=True)
        if install(packages(missing), machine):
            missing = machine.missing(requirements)
            if not missing:
                return None
    return instruction(missing, purpose=purpose, as_root=as_root)


def require(requirements: Sequence[Requirement], *, purpose: str) -> None:
    """`set_up`, then stop with the instruction (exit code 1, no traceback) if anything is
    still missing."""
    problem = set_up(requirements, purpose=purpose)
    if problem:
        raise SystemExit(problem)


def set_up_for_tests() -> str | None:
    """What the test session calls first: `make test`'s needs installed when possible; the
    one-line instruction when something is still missing (for `pytest.exit`)."""
    return set_up(TESTS, purpose="make test")


if __name__ == "__main__":
    wanted = sys.argv[1] if len(sys.argv) > 1 else "demo"
    require(TESTS if wanted == "test" else DEMO, purpose=f"make {wanted}")
