"""docker-compose.yml as data: the file resolved by Debian's `docker-compose config` (v1; it parses
and interpolates without a Docker engine), each service mapped to the argv, environment, working
directory, mounts and health check a container of it would get, and a runner that starts services
natively (no Docker engine runs here) from exactly those, in the compose file's dependency order,
each one's stdout and stderr in files of its own, stopped by process group."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.helpers.paths import BIN, REPO

COMPOSE_FILE = REPO / "docker-compose.yml"


def docker_compose() -> str | None:
    """The docker-compose command, or None when it is not installed."""
    return shutil.which("docker-compose")


def resolve(variables: Mapping[str, str], env_file: Path | None = None) -> dict[str, Any]:
    """`docker-compose config` of COMPOSE_FILE with only `variables` (plus PATH) in its environment
    and no .env file, parsed. Raises RuntimeError with docker-compose's message when it refuses."""
    command = docker_compose()
    if command is None:
        raise RuntimeError("docker-compose is not installed (apt-get install docker-compose)")
    empty = env_file
    if empty is None:
        empty = Path(os.environ.get("TMPDIR", "/tmp")) / f"lakehouse-compose-{os.getpid()}.env"
        empty.write_text("")
    try:
        done = subprocess.run(
            [command, "--env-file", str(empty), "-f", str(COMPOSE_FILE), "config"],
            cwd=REPO,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **variables},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        if env_file is None:
            empty.unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"docker-compose config failed ({done.returncode}): {done.stderr.strip()}")
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def unescape(value: str) -> str:
    """Compose writes a literal `$` as `$$` (and `config` prints it so); a container gets `$`."""
    return value.replace("$$", "$")


@dataclass(frozen=True)
class Mount:
    source: str
    """A named volume, or an absolute host path (a bind mount)."""
    target: str
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith("/")


@dataclass(frozen=True)
class Port:
    host_ip: str
    published: str
    target: str


@dataclass
class Service:
    """One service of the resolved file."""

    name: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def image(self) -> str | None:
        return self.raw.get("image")

    @property
    def builds_lakehouse_image(self) -> bool:
        build = self.raw.get("build") or {}
        return build.get("dockerfile") == "deploy/Dockerfile"

    @property
    def environment(self) -> dict[str, str]:
        env = self.raw.get("environment") or {}
        if isinstance(env, list):  # KEY=VALUE form
            env = dict(item.split("=", 1) for item in env)
        return {k: "" if v is None else unescape(str(v)) for k, v in env.items()}

    @property
    def argv(self) -> list[str]:
        """What the container runs: entrypoint + command (a string command is split like compose
        does, with shlex). The lakehouse image has no ENTRYPOINT, so its argv is the command."""

        def words(value: Any) -> list[str]:
            if value is None:
                return []
            if isinstance(value, str):
                return shlex.split(unescape(value))
            return [unescape(str(v)) for v in value]

        return words(self.raw.get("entrypoint")) + words(self.raw.get("command"))

    @property
    def working_dir(self) -> str | None:
        return self.raw.get("working_dir")

    @property
    def healthcheck(self) -> list[str] | None:
        """The health check as an argv (CMD-SHELL runs under /bin/sh -c), None without one."""
        check = self.raw.get("healthcheck") or {}
        test = check.get("test")
        if not test or check.get("disable"):
            return None
        if isinstance(test, str):
            return ["/bin/sh", "-c", unescape(test)]
        kind, *rest = (unescape(str(t)) for t in test)
        if kind == "NONE":
            return None
        if kind == "CMD-SHELL":
            return ["/bin/sh", "-c", " ".join(rest)]
        return rest

    @property
    def mounts(self) -> list[Mount]:
        out = []
        for volume in self.raw.get("volumes") or []:
            if isinstance(volume, dict):  # long syntax
                out.append(Mount(str(volume["source"]), str(volume["target"]), bool(volume.get("read_only"))))
                continue
            source, target, *mode = str(volume).split(":")
            out.append(Mount(source, target, bool(mode) and "ro" in mode[0].split(",")))
        return out

    @property
    def ports(self) -> list[Port]:
        out = []
        for port in self.raw.get("ports") or []:
            if isinstance(port, dict):
                out.append(Port(str(port.get("host_ip", "")), str(port["published"]), str(port["target"])))
                continue
            parts = str(port).split("/")[0].split(":")
            if len(parts) == 3:
                out.append(Port(*parts))
            elif len(parts) == 2:
                out.append(Port("", parts[0], parts[1]))
            else:
                out.append(Port("", "", parts[0]))
        return out

    @property
    def networks(self) -> set[str]:
        """The compose networks the service joins (none with network_mode: none)."""
        found = self.raw.get("networks") or {}
        return set(found) if isinstance(found, dict | list) else set()

    @property
    def depends_on(self) -> dict[str, str]:
        """Service -> condition (service_started, service_healthy, service_completed_successfully)."""
        deps = self.raw.get("depends_on") or {}
        if isinstance(deps, list):
            return {d: "service_started" for d in deps}
        return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def services(config: Mapping[str, Any]) -> dict[str, Service]:
    return {name: Service(name, raw) for name, raw in config["services"].items()}


def start_order(all_services: Mapping[str, Service], names: list[str]) -> list[list[str]]:
    """`names` in waves: each wave's dependencies (within `names`) are all in earlier waves."""
    left, done = set(names), set[str]()
    waves: list[list[str]] = []
    while left:
        wave = sorted(n for n in left if set(all_services[n].depends_on) & set(names) <= done)
        if not wave:
            raise ValueError(f"dependency cycle among {sorted(left)}")
        waves.append(wave)
        done |= set(wave)
        left -= set(wave)
    return waves


def native_argv(argv: list[str], path: str) -> list[str]:
    """argv[0] as this machine finds it on `path` (the venv's bin first: the image's binaries)."""
    found = shutil.which(argv[0], path=path)
    if found is None:
        raise FileNotFoundError(f"{argv[0]} is not on {path}")
    return [found, *argv[1:]]


def native_path(extra: list[Path] | None = None) -> str:
    return os.pathsep.join([str(BIN), *(str(p) for p in extra or []), os.environ.get("PATH", "")])


def realize_mounts(service: Service, inside: Path) -> None:
    """Make the service's mounts exist natively: a named volume is a folder at its target, a bind
    mount a copy of its source there. Every target must lie under `inside` (the test resolves the
    file with container paths pointing there), so nothing outside it is touched."""
    for mount in service.mounts:
        target = Path(mount.target)
        if not target.resolve().is_relative_to(inside.resolve()):
            raise ValueError(f"{service.name}: mount target {target} is outside {inside}")
        if not mount.is_bind:
            target.mkdir(parents=True, exist_ok=True)
            continue
        source = Path(mount.source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)
            if mount.read_only:
                target.chmod(0o444)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` now (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Running:
    service: Service
    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    env: dict[str, str] = field(repr=False)
    cwd: str


class NativeStack:
    """Services of the resolved file started as processes on this machine, each in its own process
    group (start_new_session), logs under `logs`. Stop with `stop()` (always, in a finally)."""

    def __init__(self, config: Mapping[str, Any], base_env: Mapping[str, str], logs: Path) -> None:
        self.services = services(config)
        self.base_env = dict(base_env)
        self.logs = logs
        self.running: dict[str, Running] = {}
        self.path = native_path()
        logs.mkdir(parents=True, exist_ok=True)

    def env_of(self, name: str) -> dict[str, str]:
        """The service's environment as its container sees it: the base (the image's) and then the
        compose file's variables, PATH with the venv's binaries first."""
        return {**self.base_env, **self.services[name].environment, "PATH": self.path}

    def cwd_of(self, name: str) -> str:
        return self.services[name].working_dir or str(REPO)

    def start(self, name: str) -> Running:
        service = self.services[name]
        env, cwd = self.env_of(name), self.cwd_of(name)
        out, err = self.logs / f"{name}.stdout", self.logs / f"{name}.stderr"
        with out.open("ab") as stdout, err.open("ab") as stderr:
            proc = subprocess.Popen(
                native_argv(service.argv, self.path),
                cwd=cwd,
                env=env,
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.running[name] = Running(service, proc, out, err, env, cwd)
        return self.running[name]

    def exec(
        self,
        name: str,
        argv: list[str],
        input: str | None = None,
        timeout: float = 120,
        log: str = "exec",
        extra_env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Like `docker-compose exec NAME argv...`: the service's environment and working directory;
        output appended to logs/<name>.<log>.out so that it is searched for secrets too."""
        done = subprocess.run(
            native_argv(argv, self.path),
            cwd=self.cwd_of(name),
            env={**self.env_of(name), **(extra_env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        with (self.logs / f"{name}.{log}.out").open("a") as out:
            out.write(f"$ {shlex.join(argv)}\n[{done.returncode}]\n{done.stdout}{done.stderr}")
        return done

    def healthy(self, name: str) -> bool:
        """One run of the service's own health check, natively, with its environment."""
        check = self.services[name].healthcheck
        assert check is not None, f"{name} has no health check"
        try:
            done = self.exec(name, check, timeout=30, log="health")
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def wait_healthy(self, name: str, timeout: float = 120) -> float:
        """Until the health check passes; seconds it took. Fails if the process exits first. A
        check may be a whole Python program (the Dagster CLI's take seconds to import): it runs at
        most half of the time, not to slow down what it waits for on a small machine."""
        begin = time.monotonic()
        while True:
            run = self.running.get(name)
            if run is not None and run.proc.poll() is not None:
                raise AssertionError(f"{name} exited with {run.proc.returncode}:\n{self.tail(name)}")
            started = time.monotonic()
            if self.healthy(name):
                return time.monotonic() - begin
            if time.monotonic() - begin > timeout:
                raise AssertionError(f"{name} not healthy after {timeout}s:\n{self.tail(name)}")
            time.sleep(max(0.5, time.monotonic() - started))

    def start_all(self, names: list[str], timeout: float = 180) -> dict[str, float]:
        """Start `names` as compose would: a service once what it depends on (among `names`) is
        healthy; each waits for its own health check. Seconds until healthy, per service."""
        took: dict[str, float] = {}
        begin = time.monotonic()
        for wave in start_order(self.services, names):
            for name in wave:
                self.start(name)
            for name in wave:
                self.wait_healthy(name, timeout=timeout)
                took[name] = time.monotonic() - begin
        return took

    def tail(self, name: str, chars: int = 3000) -> str:
        parts = []
        for path in sorted(self.logs.glob(f"{name}.*")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM each service's process group (dependents first), then SIGKILL what is left,
        including descendants that made sessions of their own (Streamlit under the dashboard)."""
        for name in reversed(list(self.running)):
            run = self.running[name]
            if run.proc.poll() is not None:
                continue
            family = descendants(run.proc.pid)
            with suppress(ProcessLookupError):
                os.killpg(run.proc.pid, signal.SIGTERM)
            try:
                run.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(run.proc.pid, signal.SIGKILL)
                run.proc.wait(timeout=10)
            deadline = time.monotonic() + 10
            while any(_alive(p) for p in family) and time.monotonic() < deadline:
                time.sleep(0.1)
            for pid in family:
                if _alive(pid):
                    with suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)

    def log_files(self) -> list[Path]:
        return sorted(p for p in self.logs.iterdir() if p.is_file())


@contextmanager
def native_stack(config: Mapping[str, Any], base_env: Mapping[str, str], logs: Path) -> Iterator[NativeStack]:
    stack = NativeStack(config, base_env, logs)
    try:
        yield stack
    finally:
        stack.stop()
