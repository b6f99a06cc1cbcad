"""Postfix over SSH: the only module that changes a Postfix relay host. It fills the relay interface.

A relayed domain is one line in each of two lookup tables in the host's config directory:
`relay_domains` ("orders.example.com OK": Postfix accepts mail for it) and `transport`
("orders.example.com smtp:[mail.example.org]": where Postfix passes it on). Both must be indexed
tables (hash, btree, lmdb or cdb) that main.cf already names; a plain "/file/name" list is refused,
because only a built table can be asked what Postfix sees (`postmap -q`), which is how a second run
knows that nothing is left to do and how drift is found. Each step reads before it writes:

    read both sources and ask both built tables  ->  nothing differs: return False, write nothing
    before_write(), write transport               (temp file, postmap it, rename built file and source)
    before_write(), write relay_domains           (the route before the door, #reload)
    postfix check, postfix reload                 ->  return True

Every command runs as `[sudo -n --] <command_directory>/<tool> -c <config_directory> …` (or a short
`sh -c` script with its values as arguments), each argument quoted; names that are not plain DNS
names are refused before connecting. The host key is pinned: any other key, or a server that offers
none of the pinned type, is refused. The private key text stays on the object and in paramiko's key:
never in the repr, a message or a log line. Every failure is one ProviderError with a sentence for a
support person. The Postfix behaviour relied on here is written down, with its sources, in
docs/providers/postfix.md (cited as #anchors).
"""

import base64
import hashlib
import io
import re
import shlex
from dataclasses import dataclass

import paramiko

from integrations import BeforeWrite, PlannedCall
from integrations.errors import ProviderError

from . import RelayState, TableState

PROVIDER = "postfix"
# The table types postmap builds into one file, and that file's suffix (#postmap). Multi-file types
# (dbm, sdbm) cannot be swapped in with one rename, so they are refused like plain lists.
BUILT_SUFFIX = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb"}
RELAYED = "OK"  # relay_domains looks at the key only; the value is ignored (#relay-domains)
CHANGED_UNDER_US = 75  # the write script's exit status when the source changed since it was read
STDERR_LINES = 3
SPACE = " \t\r\f\v"  # what Postfix counts as whitespace in a table source (ASCII only)

# Our own copy of the DNS-name rule: integrations may not import tenants.validation (tests/test_architecture.py).
LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN_RE = re.compile(rf"(?:{LABEL}\.)+{LABEL}")
IPV4_RE = r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}"
# transport:nexthop with an SMTP client transport; [] turns MX lookups off (#transport).
HOST = rf"\[(?:{DOMAIN_RE.pattern}|{IPV4_RE})\]|{DOMAIN_RE.pattern}"
TRANSPORT_RE = re.compile(rf"(smtp|relay):({HOST})(?::([0-9]{{1,5}}))?")

# Replace one source file: refuse when it changed since it was read, write the new text (stdin) to a
# temp file beside it with the old file's mode and owner, build the table from the temp file, then
# rename the built file and the source into place: readers see the old table or the new one (#safe-updates).
WRITE_SCRIPT = r"""set -eu
f=$1 type=$2 suffix=$3 expected=$4 confdir=$5 postmap=$6
current=$({ cat -- "$f" 2>/dev/null || true; } | sha256sum | cut -d ' ' -f 1)
if [ "$current" != "$expected" ]; then echo "$f changed while it was being edited" >&2; exit 75; fi
tmp=$(mktemp "${f%/*}/.${f##*/}.XXXXXX")
trap 'rm -f -- "$tmp" "$tmp$suffix"' EXIT
cat > "$tmp"
if [ -e "$f" ]; then chmod --reference="$f" -- "$tmp"; chown --reference="$f" -- "$tmp"; else chmod 0644 -- "$tmp"; fi
"$postmap" -c "$confdir" "$type:$tmp"
mv -f -- "$tmp$suffix" "$f$suffix"
mv -f -- "$tmp" "$f"
trap - EXIT
"""
# Read each table in one round trip: its source and what the built table answers for the key, each
# as one base64 line (the bytes exactly; empty for no file or no answer: postmap -q exits 1, #postmap).
INSPECT_SCRIPT = r"""set -u
key=$1 confdir=$2 postmap=$3
shift 3
for table in "$@"; do
  f=${table#*:}
  if [ -e "$f" ]; then base64 -w 0 -- "$f" || exit 1; fi; echo
  "$postmap" -c "$confdir" -q "$key" "$table" 2>/dev/null | base64 -w 0; echo
done
"""


def _refuse(message: str) -> ProviderError:
    return ProviderError(message, provider=PROVIDER, transient=False)


def relay_domain_name(domain: str) -> str:
    """The domain in lowercase, or a refusal: only letters, digits, hyphens and dots reach the host."""
    name = domain.lower() if isinstance(domain, str) else ""
    if len(name) > 253 or not DOMAIN_RE.fullmatch(name) or name.rpartition(".")[2].isdigit():
        raise _refuse(f"Refusing to relay {domain!r}: it is not a plain DNS name such as orders.example.com.")
    return name


def relay_transport(transport: str) -> str:
    """smtp:[host], smtp:[host]:port, smtp:host or relay:… (host a DNS name or [IPv4]), or a refusal."""
    match = TRANSPORT_RE.fullmatch(transport.lower()) if isinstance(transport, str) else None
    if not match or (match[3] is not None and not 0 < int(match[3]) < 65536):
        raise _refuse(f"Refusing the relay transport {transport!r}: write it as smtp:[mail.example.org] "
                      "or smtp:[mail.example.org]:25.")
    return match[0]


# --- the source files, as text (pure functions) ---------------------------------------------------

@dataclass(frozen=True)
class Entry:
    key: str  # lowercase: Postfix folds keys to lowercase (#postmap)
    value: str  # whitespace runs made one space
    lines: tuple[int, ...]  # its line and the continuation lines after it


def entries(text: str) -> list[Entry]:
    """The "key value" entries of a table source, its lines split at "\\n" only, as Postfix does.
    Blank and # lines are skipped; a line that starts with whitespace continues the entry before it,
    even across skipped lines (#table-format)."""
    found: list[list] = []
    for number, line in enumerate(text.split("\n")):
        if not line.strip(SPACE) or line.lstrip(SPACE).startswith("#"):
            continue
        if line[0] in SPACE:
            if found:
                found[-1][1] += " " + line
                found[-1][2].append(number)
            continue
        key = re.split(f"[{SPACE}]", line, maxsplit=1)[0]
        found.append([key.lower(), line[len(key):], [number]])
    return [Entry(key, " ".join(value.split()), tuple(lines)) for key, value, lines in found]


def entry_value(text: str, key: str) -> str | None:
    """The value Postfix would use for key: the first entry's (#postmap: duplicates are skipped)."""
    return next((entry.value for entry in entries(text) if entry.key == key), None)


def with_entry(text: str, key: str, value: str) -> str:
    """Exactly one `key value` line: the first one rewritten in place, later ones dropped, or one
    appended. Every other line is kept byte for byte."""
    mine = [entry for entry in entries(text) if entry.key == key]
    if len(mine) == 1 and mine[0].value == value:
        return text
    if not mine:
        return text + ("\n" if text and not text.endswith("\n") else "") + f"{key} {value}\n"
    lines = text.split("\n")
    lines[mine[0].lines[0]] = f"{key} {value}"
    return _without_lines(lines, {number for entry in mine for number in entry.lines} - {mine[0].lines[0]})


def without_entry(text: str, key: str) -> str:
    return _without_lines(text.split("\n"), {n for entry in entries(text) if entry.key == key for n in entry.lines})


def _without_lines(lines: list[str], drop: set[int]) -> str:
    return "\n".join(line for number, line in enumerate(lines) if number not in drop)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Seen:
    """One table as read: its source text and what the built table answers for the domain."""

    text: str
    answer: str | None

    def agrees(self, domain: str) -> bool:
        """The built table answers what the source says (not so after a run stopped between the two)."""
        return entry_value(self.text, domain) == self.answer


@dataclass(frozen=True)
class Table:
    type: str  # "hash", "lmdb", …
    path: str  # the source file

    @property
    def name(self) -> str:
        return f"{self.type}:{self.path}"


@dataclass(frozen=True)
class Change:
    table: Table
    text: str  # the new source
    expected: str  # sha256 of the source as read: the write is refused if it differs by then


def plan(table: Table, seen: Seen, domain: str, value: str | None, *, any_value: bool = False) -> Change | None:
    """The new source for one table (value None: without the domain; any_value: any existing value
    will do), or None when the source already says so and the built table agrees."""
    if value is None:
        new = without_entry(seen.text, domain)
    elif any_value and entry_value(seen.text, domain) is not None:
        new = seen.text
    else:
        new = with_entry(seen.text, domain, value)
    if new == seen.text and seen.agrees(domain):
        return None
    return Change(table, new, _digest(seen.text))


# --- the host -------------------------------------------------------------------------------------

class _Unpinned(Exception):
    """The server offered a host key of a type we hold no pinned key for."""

    def __init__(self, key: paramiko.PKey):
        self.key = key


class _RefuseUnpinned(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client, hostname, key):
        raise _Unpinned(key)


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: "SHA256:" and the unpadded base64 of the key blob's SHA-256."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def plan_relay_domain(*, target: str, domain: str, transport: str) -> list[PlannedCall]:
    """The commands `ensure_relay_domain` runs on the relay host (`target`: user@host), when the
    domain is not relayed yet; none of them is run to list them."""
    where = f"postfix {target}"
    return [PlannedCall(where, "ssh: postconf, cat, postmap -q", "read relay_domains and transport and what the "
                                                                   f"built tables answer for {domain}"),
            PlannedCall(where, "ssh: write transport, postmap", f"route {domain} to {transport}"),
            PlannedCall(where, "ssh: write relay_domains, postmap", f"accept mail for {domain}"),
            PlannedCall(where, "ssh: postfix check, postfix reload", "check the configuration and reload")]


class PostfixRelay:
    """One Postfix host reached over SSH as `username`, with root through `sudo -n` unless told not to."""

    def __init__(self, host: str, port: int = 22, *, username: str, private_key: str, host_key: str,
                 config_directory: str = "/etc/postfix", command_directory: str = "/usr/sbin",
                 use_sudo: bool = True, timeout: float = 10.0):
        self.host, self.port, self.username = host, port, username
        self.host_key = host_key
        self.config_directory = config_directory.rstrip("/") or "/"
        self.command_directory = command_directory.rstrip("/")
        self.use_sudo, self.timeout = use_sudo, timeout
        self._private_key = private_key

    def __repr__(self):
        return f"PostfixRelay(host={self.host!r}, port={self.port}, username={self.username!r})"

    def ensure_relay_domain(self, domain: str, *, transport: str, before_write: BeforeWrite | None = None) -> bool:
        domain, transport = relay_domain_name(domain), relay_transport(transport)
        with self._connect() as client:
            (relay_domains, seen_relay), (transports, seen_transport) = self._inspect(client, domain)
            # The route before the door: running daemons pick up a rebuilt table by themselves
            # (#reload), and a relayed domain without its transport would go to its MX, maybe us.
            changes = [plan(transports, seen_transport, domain, transport),
                       plan(relay_domains, seen_relay, domain, RELAYED, any_value=True)]
            return self._apply(client, [change for change in changes if change], before_write)

    def remove_relay_domain(self, domain: str, *, before_write: BeforeWrite | None = None) -> bool:
        domain = relay_domain_name(domain)
        with self._connect() as client:
            # The door before the route (the reverse of ensure_relay_domain).
            changes = [plan(table, seen, domain, None) for table, seen in self._inspect(client, domain)]
            return self._apply(client, [change for change in changes if change], before_write)

    def relay_state(self, domain: str) -> RelayState:
        domain = relay_domain_name(domain)
        with self._connect() as client:
            relay_domains, transports = [
                TableState(table=table.name, entry=entry_value(seen.text, domain), answer=seen.answer)
                for table, seen in self._inspect(client, domain)]
        return RelayState(domain=domain, relay_domains=relay_domains, transport=transports)

    # --- steps ---

    def _tables(self, client) -> tuple[Table, Table]:
        """The two tables main.cf names, found with `postconf -x` ($names expanded)."""
        output = self._run(client, self._tool("postconf", "-x", "relay_domains", "transport_maps"),
                           what="read relay_domains and transport_maps from main.cf")
        values = dict(line.partition(" = ")[::2] for line in output.splitlines() if " = " in line)
        return (self._table(values.get("relay_domains", ""), "relay_domains", "relay_domains"),
                self._table(values.get("transport_maps", ""), "transport", "transport_maps"))

    def _table(self, setting: str, file: str, parameter: str) -> Table:
        path = f"{self.config_directory}/{file}"
        for item in re.split(r"[\s,]+", setting):
            kind, _, name = item.partition(":")
            if name == path and kind in BUILT_SUFFIX:
                return Table(kind, path)
        raise _refuse(
            f"Postfix on {self.host} does not use {path} as a lookup table: its main.cf has "
            f"'{parameter} = {setting}'. Add hash:{path} (or lmdb:, cdb:, btree:) to {parameter} once by "
            "hand, run 'postfix reload', then retry.")

    def _apply(self, client, changes: list[Change], before_write: BeforeWrite | None) -> bool:
        for change in changes:
            if before_write:
                before_write()
            self._write(client, change)
        if changes:
            self._run(client, self._tool("postfix", "check"), what="check its configuration ('postfix check')")
            self._run(client, self._tool("postfix", "reload"), what="reload ('postfix reload')")
        return bool(changes)

    def _inspect(self, client, domain: str) -> list[tuple[Table, Seen]]:
        """Both tables, each with its source and the built table's answer for domain (two round trips)."""
        tables = self._tables(client)
        argv = ["sh", "-c", INSPECT_SCRIPT, "sh", domain, self.config_directory,
                f"{self.command_directory}/postmap", *(table.name for table in tables)]
        output = self._run(client, argv, what=f"read {' and '.join(table.path for table in tables)}").split("\n")
        decoded = [base64.b64decode(line).decode("utf-8", "surrogateescape") for line in output[:2 * len(tables)]]
        return [(table, Seen(decoded[2 * i], " ".join(decoded[2 * i + 1].split()) or None))
                for i, table in enumerate(tables)]

    def _write(self, client, change: Change) -> None:
        table = change.table
        argv = ["sh", "-c", WRITE_SCRIPT, "sh", table.path, table.type, BUILT_SUFFIX[table.type],
                change.expected, self.config_directory, f"{self.command_directory}/postmap"]
        self._run(client, argv, what=f"write and rebuild {table.name}", stdin=change.text)

    def _tool(self, name: str, *args: str) -> list[str]:
        return [f"{self.command_directory}/{name}", "-c", self.config_directory, *args]

    # --- SSH ---

    def _connect(self) -> paramiko.SSHClient:
        """An authenticated connection to the pinned host (use it in a `with` block: it closes)."""
        pinned, key = _public_key(self.host_key), _private_key(self._private_key)
        if key is None:  # refused here, not where the key text is a local an error report would show
            raise _refuse("The SSH private key stored for the relay host could not be read: it must be an "
                          "unencrypted Ed25519, ECDSA or RSA private key in PEM or OpenSSH format.")
        client = paramiko.SSHClient()
        known_as = self.host if self.port == 22 else f"[{self.host}]:{self.port}"  # as known_hosts names it
        client.get_host_keys().add(known_as, pinned.get_name(), pinned)
        client.set_missing_host_key_policy(_RefuseUnpinned())
        try:
            client.connect(self.host, port=self.port, username=self.username, pkey=key, timeout=self.timeout,
                           banner_timeout=self.timeout, auth_timeout=self.timeout, channel_timeout=self.timeout,
                           allow_agent=False, look_for_keys=False)
        except (_Unpinned, OSError, EOFError, paramiko.SSHException) as exc:
            client.close()
            raise self._connection_error(exc, pinned) from None
        return client

    def _connection_error(self, exc: Exception, pinned: paramiko.PKey) -> ProviderError:
        where = f"the relay host {self.host}:{self.port}"
        if isinstance(exc, (_Unpinned, paramiko.BadHostKeyException)):
            got = exc.key  # what the server offered (BadHostKeyException keeps it there too)
            return _refuse(
                f"{where} presented the SSH host key {got.get_name()} {fingerprint(got)}, not the pinned "
                f"{pinned.get_name()} {fingerprint(pinned)}, so nothing was sent. If the server was rebuilt, "
                "confirm its new key with its administrator and update the pinned key; otherwise someone "
                "may be intercepting the connection.")
        if isinstance(exc, paramiko.AuthenticationException):
            return _refuse(f"{where} refused our SSH key for the user '{self.username}'. Add the key's public "
                           f"half to that user's authorized_keys on the host, or store the right key.")
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {self.timeout:g} s"
        elif isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
            reason = "; ".join(sorted({(e.strerror or str(e)).lower() for e in exc.errors.values()}))
        else:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return ProviderError(f"Could not reach {where} over SSH ({reason}). Retrying later may help; if it "
                             "keeps failing, check that the host and its SSH service are up.",
                             provider=PROVIDER, transient=True, provider_message=reason)

    def _run(self, client, argv: list[str], *, what: str, stdin: str = "", ok=(0,)) -> str:
        """Run one command; its stdout, or a ProviderError with the first lines of its stderr."""
        command = " ".join(shlex.quote(arg) for arg in (["sudo", "-n", "--"] if self.use_sudo else []) + argv)
        try:
            channel_in, channel_out, channel_err = client.exec_command(command, timeout=self.timeout)
            if stdin:
                channel_in.write(stdin.encode("utf-8", "surrogateescape"))
            channel_in.channel.shutdown_write()
            out, err = channel_out.read(), channel_err.read()
            status = channel_out.channel.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            status, err = -1, str(exc).encode() or type(exc).__name__.encode()
        if status not in ok:
            raise self._command_error(what, status, err.decode("utf-8", "replace")) from None
        return out.decode("utf-8", "surrogateescape")

    def _command_error(self, what: str, status: int, stderr: str) -> ProviderError:
        excerpt = " / ".join([line.strip()[:300] for line in stderr.splitlines() if line.strip()][:STDERR_LINES])
        if status == -1:  # no exit status: the connection broke or timed out
            return ProviderError(f"The SSH connection to the relay host {self.host} broke off while trying to "
                                 f"{what} ({excerpt}). Retrying may help.", provider=PROVIDER, transient=True,
                                 provider_message=excerpt)
        if status == CHANGED_UNDER_US:
            return ProviderError(f"The relay host {self.host} could not {what}: the file changed while we were "
                                 "editing it (is someone editing it by hand?). Nothing was written; retrying reads "
                                 "it again.", provider=PROVIDER, transient=True, error_code=status,
                                 provider_message=excerpt)
        return ProviderError(f"The relay host {self.host} could not {what}: {excerpt or 'no message'} (exit "
                             f"status {status}).", provider=PROVIDER, transient=False, error_code=status,
                             provider_message=excerpt)


def _private_key(text: str) -> paramiko.PKey | None:
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    return None


def _public_key(line: str) -> paramiko.PKey:
    """A public key line ("ssh-ed25519 AAAA… comment", as in ssh_host_ed25519_key.pub), or a
    known_hosts line ("host ssh-ed25519 AAAA…")."""
    words = line.split() if isinstance(line, str) else []
    for kind, data in zip(words, words[1:]):
        if kind.startswith(("ssh-", "ecdsa-")):
            try:
                return paramiko.PKey.from_type_string(kind, base64.b64decode(data, validate=True))
            except Exception:  # malformed key bytes surface as many types; the line is public, nothing leaks
                break
    raise _refuse("The pinned SSH host key for the relay host is not a public key line such as "
                  "'ssh-ed25519 AAAA…' (the server's /etc/ssh/ssh_host_ed25519_key.pub).")
