"""A real single-node SLURM cluster on localhost, started by hand for a test.

No systemd and nothing outside a temp folder: munged, slurmctld and slurmd run in the
foreground as children of the test, with their keys, sockets, state, logs and pid files in
that folder, and are stopped by PID whatever happens. Needs root (slurmd runs jobs as their
submitter) and Debian's `slurm-wlm munge`.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

DAEMONS = ["munged", "slurmctld", "slurmd"]
CLIENTS = ["sinfo", "squeue", "sbatch", "scancel", "srun", "unshare", "mount"]
# Where Debian's SLURM looks for its config when SLURM_CONF is not set (see below).
DEFAULT_CONF_DIR = Path("/etc/slurm")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def slurm_available() -> str | None:
    """Why a local cluster cannot be started here, or None if it can (for pytest.skip)."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "a local SLURM cluster needs Linux"
    if os.geteuid() != 0:
        return "a local SLURM cluster needs root (slurmd starts jobs as their submitter)"
    missing = [name for name in DAEMONS + CLIENTS if shutil.which(name) is None]
    if missing:
        return f"missing {', '.join(missing)} (Debian: apt-get install slurm-wlm munge)"
    if not DEFAULT_CONF_DIR.is_dir():
        return f"{DEFAULT_CONF_DIR} is missing: not the layout of Debian's slurm-wlm"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return "cannot create a mount namespace (unshare --mount), which slurmd needs here"
    return None


def _free_ports(count: int) -> list[int]:
    """Ports nobody listens on, so that a SLURM already on this machine is not disturbed."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _slurm_conf(root: Path, munge_socket: Path) -> str:
    """One node (as `slurmd -C` describes this machine) in one default partition."""
    node = subprocess.run(
        ["slurmd", "-C"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    host = node.split()[0].removeprefix("NodeName=")
    controller_port, node_port = _free_ports(2)
    return "\n".join(
        [
            "ClusterName=localtest",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={controller_port}",
            f"SlurmdPort={node_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge_socket}",
            f"StateSaveLocation={root}/state",
            f"SlurmdSpoolDir={root}/spool",
            f"SlurmctldPidFile={root}/slurmctld.pid",
            f"SlurmdPidFile={root}/slurmd.pid",
            f"SlurmctldLogFile={root}/slurmctld.log",
            f"SlurmdLogFile={root}/slurmd.log",
            f"PlugStackConfig={root}/conf/plugstack.conf",
            # No cgroups and no systemd here: track and bind tasks the plain way.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "MailProg=/bin/true",
            # squeue, the only status command without slurmdbd, sees an ended job this long.
            "MinJobAge=300",
            "ReturnToService=2",
            f"{node} NodeAddr=127.0.0.1 State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _logs(root: Path) -> str:
    parts = []
    for path in sorted(root.glob("*.log")):
        lines = path.read_text(errors="replace").splitlines()[-30:]
        parts.append(f"--- {path.name} (last lines)\n" + "\n".join(lines))
    return "\n".join(parts)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM, a grace period, then SIGKILL; always reaped, so no zombie is left."""
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            process.kill()
        process.wait()


@contextmanager
def local_slurm(root: Path) -> Iterator[dict[str, str]]:
    """Start the cluster in `root`; yield the environment variables its clients need.

    SLURM clients (sbatch, squeue, ...) find the config through SLURM_CONF. Inside a job,
    however, the SLURM executor plugin clears every SLURM_* variable before its `srun`, which
    then reads /etc/slurm/slurm.conf as on a real compute node. slurmd, and so every job it
    starts, therefore runs in a private mount namespace in which conf/ is mounted over
    /etc/slurm; the machine's own /etc/slurm is never touched.
    """
    root = root.resolve()
    conf_dir = root / "conf"
    for folder in (conf_dir, root / "state", root / "spool", root / "munge"):
        folder.mkdir(parents=True, exist_ok=True)
    munge_socket = root / "munge" / "munge.socket"
    if len(str(munge_socket)) > 100:
        raise RuntimeError(f"path too long for a unix socket: {munge_socket}")
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o400)
    conf = conf_dir / "slurm.conf"
    conf.write_text(_slurm_conf(root, munge_socket))
    (conf_dir / "plugstack.conf").write_text("")
    env = {"SLURM_CONF": str(conf)}

    commands = {
        # --force: munged refuses sockets below folders that are not world-searchable,
        # as pytest's temp folders are not; only root uses this one.
        "munged": [
            "munged", "--foreground", "--force", f"--key-file={key}",
            f"--socket={munge_socket}", f"--pid-file={root}/munged.pid",
            f"--log-file={root}/munged.log", f"--seed-file={root}/munge/munged.seed",
        ],
        "slurmctld": ["slurmctld", "-D", "-f", str(conf)],
        "slurmd": [
            "unshare", "--mount", "--propagation", "private",
            "sh", "-c", 'mount --bind "$1" /etc/slurm && shift && exec "$@"', "sh",
            str(conf_dir), "slurmd", "-D", "-f", str(conf),
        ],
    }  # fmt: skip
    started: dict[str, subprocess.Popen] = {}
    try:
        for name, command in commands.items():
            with open(root / f"{name}.stdout.log", "wb") as output:
                # A session of their own: a Ctrl-C at the terminal reaches the test, whose
                # cleanup then stops the daemons in order.
                started[name] = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env={**os.environ, **env},
                )
            if name == "munged":
                _wait(lambda: munge_socket.exists(), started, root, "munged's socket")
        _wait(lambda: _node_state(env) == "idle", started, root, "the node to be idle")
        yield env
    finally:
        if "slurmctld" in started and started["slurmctld"].poll() is None:
            _cancel_jobs(env)
        for process in reversed(started.values()):
            _stop(process)


def _node_state(env: dict[str, str]) -> str:
    try:
        result = subprocess.run(
            ["sinfo", "--noheader", "--Node", "--format=%T"],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=STOP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "not answering"
    return result.stdout.strip()


def _cancel_jobs(env: dict[str, str]) -> None:
    """Jobs left by a test that failed half-way: their processes (children of slurmstepd,
    not of slurmd) would outlive the daemons. Best effort, never raises."""
    client_env = {**os.environ, **env}
    deadline = time.monotonic() + STOP_TIMEOUT
    with suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            ["scancel", "--user=root"], capture_output=True, env=client_env, timeout=STOP_TIMEOUT
        )
        while time.monotonic() < deadline:
            queue = subprocess.run(
                ["squeue", "--noheader", "--format=%i"],
                capture_output=True,
                text=True,
                env=client_env,
                timeout=STOP_TIMEOUT,
            )
            if queue.returncode == 0 and not queue.stdout.strip():
                return
            time.sleep(0.5)


def _wait(
    ready: Callable[[], bool],
    started: dict[str, subprocess.Popen],
    root: Path,
    what: str,
) -> None:
    """Poll until ready(); fail early if a daemon died, and always with the daemons' logs."""
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        dead = [name for name, process in started.items() if process.poll() is not None]
        if dead or time.monotonic() > deadline:
            problem = (
                f"{', '.join(dead)} exited" if dead else f"timed out after {START_TIMEOUT:g} s"
            )
            raise RuntimeError(f"local SLURM: waiting for {what}: {problem}\n{_logs(root)}")
        time.sleep(0.2)
