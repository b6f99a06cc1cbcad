"""A real OpenSSH server and a real Postfix instance on 127.0.0.1, each in its own temp directory,
for tests/test_postfix_relay.py (`make relay-services` installs Debian's packages).

sshd runs from its own config (free port, generated host key, our authorized_keys, no PAM) with
`-D -E <log>`; it needs root for the privilege-separation directory /run/sshd, which Debian's
service unit would create. Postfix runs with `-c <dir>`: its own main.cf and master.cf (smtpd on a
free loopback port, no chroot, nobody trusted by address so relaying depends on relay_domains),
queue and data directories under the temp dir, and logging to a file through postlogd
(docs/providers/postfix.md#test-instance). Nothing here sleeps and hopes: every wait polls a
condition until a deadline.
"""

import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SBIN = "/usr/sbin"
REQUIRED = (SSHD, "/usr/bin/ssh-keygen", "/usr/bin/sudo",
            *(f"{SBIN}/{tool}" for tool in ("postfix", "postmap", "postconf", "postlog")))
DEADLINE = 15.0


def missing_binaries() -> list[str]:
    return [path for path in REQUIRED if not os.access(path, os.X_OK)]


def wait_until(condition, *, what: str, timeout: float = DEADLINE, every: float = 0.05):
    """Poll condition() until it returns something true; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def make_directory(prefix: str) -> Path:
    """A temp dir that Postfix's own user can enter (pytest's tmp_path is 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@dataclass
class KeyPair:
    private: str  # PEM or OpenSSH text
    public: str  # "ssh-ed25519 AAAA… comment"


def generate_key(path: Path, kind: str = "ed25519", *, pem: bool = False) -> KeyPair:
    argv = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", path.name, "-f", str(path)] + (["-m", "PEM"] if pem else [])
    subprocess.run(argv, check=True, capture_output=True)
    return KeyPair(path.read_text(), path.with_suffix(".pub").read_text().strip())


@dataclass
class SshServer:
    port: int
    host_key: str  # the public line to pin
    directory: Path
    process: subprocess.Popen

    @property
    def log(self) -> str:
        return (self.directory / "sshd.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=DEADLINE)


SSHD_CONFIG = """\
ListenAddress 127.0.0.1:{port}
HostKey {dir}/host_ed25519
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
# the temp dir sits in world-writable /tmp, which StrictModes would refuse
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
LogLevel VERBOSE
{penalties}"""


def start_sshd(directory: Path, *, authorized_keys: list[str]) -> SshServer:
    host = generate_key(directory / "host_ed25519")
    (directory / "authorized_keys").write_text("".join(key + "\n" for key in authorized_keys))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    port = free_port()
    config = directory / "sshd_config"
    # OpenSSH 9.8 and later slow down a source address after failed logins; the tests fail some on purpose.
    for penalties in ("PerSourcePenalties no\n", ""):
        config.write_text(SSHD_CONFIG.format(port=port, dir=directory, penalties=penalties))
        if subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True).returncode == 0:
            break
    process = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(directory / "sshd.log")])
    server = SshServer(port, host.public, directory, process)
    wait_until(lambda: process.poll() is not None or accepts_connections(port), what=f"sshd on port {port}")
    if process.poll() is not None:
        raise AssertionError(f"sshd exited with {process.returncode}: {server.log}")
    return server


MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = relay-test.localdomain
mydestination =
# Nobody is trusted by address: only relay_domains lets a recipient through (smtpd_relay_restrictions).
mynetworks =
alias_maps =
alias_database =
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
relay_domains = {relay_domains}
transport_maps = {transport_maps}
"""

# chroot "n" everywhere: a chrooted daemon would need copies of /etc files in the queue directory.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000 0 flush
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


@dataclass
class PostfixInstance:
    directory: Path
    smtp_port: int
    config_directory: str = field(init=False)

    def __post_init__(self):
        self.config_directory = str(self.directory / "etc")

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([f"{SBIN}/{tool}", "-c", self.config_directory, *args],
                              capture_output=True, text=True, check=check)

    def path(self, name: str) -> Path:
        return Path(self.config_directory) / name

    @property
    def log(self) -> str:
        path = self.directory / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def checkpoint(self) -> None:
        """Write a marker through postlogd and wait until it is in the log: everything logged before
        it (a reload's "refreshing" line, sent before `postfix reload` returned) is there too."""
        marker = f"checkpoint-{time.monotonic_ns()}"
        subprocess.run([f"{SBIN}/postlog", "-c", self.config_directory, "-t", "relay-test", marker], check=True)
        wait_until(lambda: marker in self.log, what="the checkpoint in the Postfix log")

    def reloads(self) -> int:
        self.checkpoint()
        return self.log.count("refreshing the Postfix mail system")

    def rcpt(self, address: str) -> tuple[int, str]:
        """Postfix's answer to RCPT TO from a client on loopback (never DATA: nothing is queued)."""
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=DEADLINE) as smtp:
            smtp.ehlo("client.example")
            smtp.mail("sender@example.net")
            code, message = smtp.rcpt(address)
            smtp.rset()
        return code, message.decode()

    def stop(self) -> None:
        self.run("postfix", "stop", check=False)
        wait_until(lambda: self.run("postfix", "status", check=False).returncode != 0, what="Postfix to stop")


def settle(path: Path) -> None:
    """Date a config file a minute back: Postfix programs re-read a main.cf changed within the last
    second, 300 ms apart, until it is older (observed: postconf took 1.8 s on a fresh file)."""
    past = time.time() - 60
    os.utime(path, (past, past))


def start_postfix(directory: Path, *, relay_type: str = "hash", transport_type: str = "lmdb",
                  relay_domains: str = "", transport: str = "") -> PostfixInstance:
    etc = directory / "etc"
    etc.mkdir()
    (directory / "queue").mkdir(mode=0o755)
    instance = PostfixInstance(directory, free_port())
    (etc / "main.cf").write_text(MAIN_CF.format(dir=directory, relay_domains=f"{relay_type}:{etc}/relay_domains",
                                                transport_maps=f"{transport_type}:{etc}/transport"))
    (etc / "master.cf").write_text(MASTER_CF.format(port=instance.smtp_port))
    settle(etc / "main.cf")
    for name, text, kind in (("relay_domains", relay_domains, relay_type), ("transport", transport, transport_type)):
        (etc / name).write_text(text)
        instance.run("postmap", f"{kind}:{etc / name}")
    started = instance.run("postfix", "start", check=False)
    if started.returncode != 0:
        raise AssertionError(f"postfix start failed: {started.stderr}\n{instance.log}")
    wait_until(lambda: accepts_connections(instance.smtp_port), what=f"Postfix smtpd on port {instance.smtp_port}")
    return instance


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
