"""The Postfix relay (integrations/relay/postfix.py) against a real OpenSSH server and a real Postfix
on 127.0.0.1 (tests/relay_services.py; `make relay-services` installs them). The proof that a step
worked is Postfix's own answer: `postmap -q` on the built tables, and RCPT TO over SMTP.

Both services live for the whole module; each test uses domains of its own, and every file
starts with lines written "by hand" that must survive every change byte for byte.
"""

import getpass
import itertools
import os
import socket
import sys
from pathlib import Path

import pytest
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from integrations.errors import ProviderError
from integrations.relay.postfix import PostfixRelay
from tests import relay_services
from tests.relay_services import (
    free_port,
    generate_key,
    make_directory,
    remove,
    wait_until,
)

pytestmark = pytest.mark.slow
TRANSPORT = "smtp:[mail.example.org]"
BY_HAND_RELAY = "# relayed by hand, keep\nkeep.example OK\n"
BY_HAND_TRANSPORT = "# by hand\nkeep.example   smtp:[keep.example.net]:2525\n"
# defer_unauth_destination, the last of smtpd_relay_restrictions (docs/providers/postfix.md#relay-check)
RELAY_DENIED = 454
_numbers = itertools.count()


@pytest.fixture(scope="module")
def services():
    missing = relay_services.missing_binaries()
    reason = f"{', '.join(missing)} not installed" if missing else ""
    if not reason and os.geteuid() != 0:
        reason = "sshd and Postfix need root"
    if reason:
        if os.environ.get("REQUIRE_SERVICES"):
            pytest.fail(f"REQUIRE_SERVICES is set, but {reason} (make test runs `make relay-services`)")
        pytest.skip(f"{reason}; run `make relay-services`")


@pytest.fixture(scope="module")
def keys(services):
    directory = make_directory("ardamail-keys-")
    yield {
        "client": generate_key(directory / "client"),
        "pem": generate_key(directory / "pem", "ecdsa", pem=True),
        "stranger": generate_key(directory / "stranger"),
        "other_host": generate_key(directory / "other_host"),
        "other_type_host": generate_key(directory / "other_type_host", "ecdsa"),
    }
    remove(directory)


@pytest.fixture(scope="module")
def sshd(keys):
    directory = make_directory("ardamail-sshd-")
    server = relay_services.start_sshd(directory, authorized_keys=[keys["client"].public, keys["pem"].public])
    yield server
    server.stop()
    remove(directory)


@pytest.fixture(scope="module")
def postfix(services):
    directory = make_directory("ardamail-postfix-")
    instance = relay_services.start_postfix(directory, relay_domains=BY_HAND_RELAY, transport=BY_HAND_TRANSPORT)
    yield instance
    instance.stop()
    remove(directory)


def make_relay(sshd, postfix, keys, **overrides) -> PostfixRelay:
    options = dict(port=sshd.port, username=getpass.getuser(), private_key=keys["client"].private,
                   host_key=sshd.host_key, config_directory=postfix.config_directory, timeout=5)
    return PostfixRelay("127.0.0.1", **{**options, **overrides})


@pytest.fixture
def relay(sshd, postfix, keys):
    return make_relay(sshd, postfix, keys)


@pytest.fixture
def domain():
    return f"orders{next(_numbers)}.example"


def lines_for(path: Path, domain: str) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.split()[:1] == [domain]]


def snapshot(postfix) -> dict:
    """Each source and built file's inode, mtime and bytes: equal snapshots mean nothing was written."""
    names = ("relay_domains", "relay_domains.db", "transport", "transport.lmdb")
    return {name: (os.stat(postfix.path(name)).st_ino, os.stat(postfix.path(name)).st_mtime_ns,
                   postfix.path(name).read_bytes()) for name in names}


def answer(postfix, domain: str, table: str) -> str | None:
    kind = {"relay_domains": "hash", "transport": "lmdb"}[table]
    found = postfix.run("postmap", "-q", domain, f"{kind}:{postfix.path(table)}", check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def assert_by_hand_lines_kept(postfix):
    assert postfix.path("relay_domains").read_text().startswith(BY_HAND_RELAY)
    assert postfix.path("transport").read_text().startswith(BY_HAND_TRANSPORT)


def test_it_relays_a_domain_that_postfix_refused_before(relay, postfix, domain):
    assert postfix.rcpt(f"x@{domain}") == (RELAY_DENIED, f"4.7.1 <x@{domain}>: Relay access denied")
    reloads = postfix.reloads()

    assert relay.ensure_relay_domain(domain, transport=TRANSPORT) is True

    assert lines_for(postfix.path("relay_domains"), domain) == [f"{domain} OK"]
    assert lines_for(postfix.path("transport"), domain) == [f"{domain} {TRANSPORT}"]
    assert_by_hand_lines_kept(postfix)
    assert (answer(postfix, domain, "relay_domains"), answer(postfix, domain, "transport")) == ("OK", TRANSPORT)
    assert postfix.run("postconf", "-h", "relay_domains").stdout.strip() == f"hash:{postfix.path('relay_domains')}"
    assert postfix.reloads() == reloads + 1
    assert postfix.run("postfix", "status").returncode == 0
    # The real proof: Postfix now takes mail for the domain from a client it does not trust.
    wait_until(lambda: postfix.rcpt(f"x@{domain}")[0] == 250, what="Postfix to accept RCPT TO for the new domain")
    assert postfix.rcpt(f"x@{domain}") == (250, "2.1.5 Ok")


def test_adding_it_again_writes_nothing_and_does_not_reload(relay, postfix, domain):
    relay.ensure_relay_domain(domain, transport=TRANSPORT)
    before, reloads, writes = snapshot(postfix), postfix.reloads(), []

    again = relay.ensure_relay_domain(domain.upper(), transport=TRANSPORT, before_write=lambda: writes.append(1))

    assert again is False
    assert snapshot(postfix) == before
    assert postfix.reloads() == reloads
    assert writes == []


def test_a_changed_transport_is_rewritten_in_place(relay, postfix, domain):
    relay.ensure_relay_domain(domain, transport=TRANSPORT)
    with postfix.path("transport").open("a") as source:  # a line after ours, so "in place" is visible
        source.write(f"after-{domain} smtp:[after.example.net]\n")
    lines = postfix.path("transport").read_text().splitlines()
    relay_domains = os.stat(postfix.path("relay_domains"))

    assert relay.ensure_relay_domain(domain, transport="smtp:[mail2.example.org]:2525") is True

    changed = postfix.path("transport").read_text().splitlines()
    position = lines.index(f"{domain} {TRANSPORT}")
    assert changed == lines[:position] + [f"{domain} smtp:[mail2.example.org]:2525"] + lines[position + 1:]
    assert answer(postfix, domain, "transport") == "smtp:[mail2.example.org]:2525"
    assert os.stat(postfix.path("relay_domains")).st_ino == relay_domains.st_ino  # not rewritten


def test_removing_takes_both_lines_out_and_postfix_refuses_again(relay, postfix, domain):
    relay.ensure_relay_domain(domain, transport=TRANSPORT)
    wait_until(lambda: postfix.rcpt(f"x@{domain}")[0] == 250, what="Postfix to accept the domain")

    assert relay.remove_relay_domain(domain) is True

    assert lines_for(postfix.path("relay_domains"), domain) == lines_for(postfix.path("transport"), domain) == []
    assert (answer(postfix, domain, "relay_domains"), answer(postfix, domain, "transport")) == (None, None)
    assert_by_hand_lines_kept(postfix)
    wait_until(lambda: postfix.rcpt(f"x@{domain}")[0] == RELAY_DENIED, what="Postfix to refuse the domain again")
    assert relay.remove_relay_domain(domain) is False


def test_a_source_line_that_was_never_built_is_built(relay, postfix, domain):
    # What a run that stopped between writing a source and building it would leave behind.
    for name, value in (("relay_domains", "OK"), ("transport", TRANSPORT)):
        with postfix.path(name).open("a") as source:
            source.write(f"{domain} {value}\n")
    assert answer(postfix, domain, "transport") is None

    assert relay.ensure_relay_domain(domain, transport=TRANSPORT) is True

    assert (answer(postfix, domain, "relay_domains"), answer(postfix, domain, "transport")) == ("OK", TRANSPORT)
    assert lines_for(postfix.path("transport"), domain) == [f"{domain} {TRANSPORT}"]


def test_the_relay_state_says_what_postfix_sees(sshd, postfix, keys, relay, domain):
    relay.ensure_relay_domain(domain, transport=TRANSPORT)
    # A PEM-encoded ECDSA key and no sudo (we log in as root here) work the same.
    plain = make_relay(sshd, postfix, keys, private_key=keys["pem"].private, use_sudo=False)

    state = plain.relay_state(domain)

    assert state == {
        "domain": domain,
        "relay_domains": {"table": f"hash:{postfix.path('relay_domains')}", "entry": "OK", "answer": "OK"},
        "transport": {"table": f"lmdb:{postfix.path('transport')}", "entry": TRANSPORT, "answer": TRANSPORT},
    }
    unknown = plain.relay_state("unknown-" + domain)
    assert (unknown["relay_domains"]["entry"], unknown["transport"]["answer"]) == (None, None)


@pytest.mark.parametrize("domain_, transport", [
    ("x.example; touch /tmp/owned", TRANSPORT),
    ("$(reboot).example", TRANSPORT),
    ("x.example\nevil.example OK", TRANSPORT),
    ("-c.example", TRANSPORT),
    ("a b.example", TRANSPORT),
    ("192.0.2.1", TRANSPORT),
    ("ok.example", "smtp:[mail.example.org]; reboot"),
    ("ok.example", "smtp:[mail`id`.example.org]"),
    ("ok.example", "local:"),
    ("ok.example", "smtp:[mail.example.org]:99999"),
])
def test_hostile_names_are_refused_before_connecting(domain_, transport):
    # Nothing listens on the port: had it tried to connect, the error would be a transient one.
    relay = PostfixRelay("127.0.0.1", free_port(), username="root", private_key="-", host_key="-")
    with pytest.raises(ProviderError) as refused:
        relay.ensure_relay_domain(domain_, transport=transport)
    assert refused.value.transient is False
    assert refused.value.message.startswith("Refusing")
    if transport == TRANSPORT:
        for call in (lambda: relay.remove_relay_domain(domain_), lambda: relay.relay_state(domain_)):
            with pytest.raises(ProviderError, match="^Refusing"):
                call()


@pytest.mark.parametrize("pinned", ["other_host", "other_type_host"])
def test_a_host_key_that_is_not_the_pinned_one_is_refused_and_nothing_changes(sshd, postfix, keys, domain, pinned):
    before = snapshot(postfix)
    relay = make_relay(sshd, postfix, keys, host_key=keys[pinned].public)

    with pytest.raises(ProviderError) as refused:
        relay.ensure_relay_domain(domain, transport=TRANSPORT)

    assert refused.value.transient is False
    assert "presented the SSH host key ssh-ed25519 SHA256:" in refused.value.message
    assert "nothing was sent" in refused.value.message
    assert snapshot(postfix) == before


def error_report(call) -> tuple[ProviderError, str]:
    """The error and what Django's error report (DEBUG page, error mail) would show of it: every
    frame's locals. Raised here, so the test's own locals (the keys) are not among them."""
    try:
        call()
    except ProviderError as error:
        reporter = ExceptionReporter(RequestFactory().get("/"), *sys.exc_info())
        return error, reporter.get_traceback_html() + reporter.get_traceback_text()
    raise AssertionError("no ProviderError")


def test_a_key_the_server_does_not_know_is_refused_and_never_shown(sshd, postfix, keys, domain):
    relay = make_relay(sshd, postfix, keys, private_key=keys["stranger"].private)

    refused, report = error_report(lambda: relay.ensure_relay_domain(domain, transport=TRANSPORT))

    assert refused.transient is False
    assert f"refused our SSH key for the user '{getpass.getuser()}'" in refused.message
    secret = keys["stranger"].private.splitlines()[1]
    assert "PostfixRelay(host=" in report  # the report does show each frame's locals
    assert secret not in report and secret not in repr(relay)


def test_an_unreadable_private_key_is_refused_before_connecting_and_never_shown(sshd, postfix, keys, domain):
    lines = keys["client"].private.splitlines()
    relay = make_relay(sshd, postfix, keys, private_key="\n".join(lines[:3] + lines[-1:]))  # cut short

    refused, report = error_report(lambda: relay.relay_state(domain))

    assert refused.message.startswith("The SSH private key stored for the relay host could not be read")
    assert lines[2] not in report


def test_an_ssh_server_that_is_down_is_a_transient_error(keys):
    relay = PostfixRelay("127.0.0.1", free_port(), username="root", private_key=keys["client"].private,
                         host_key=keys["other_host"].public)
    with pytest.raises(ProviderError) as unreachable:
        relay.ensure_relay_domain("down.example", transport=TRANSPORT)
    assert unreachable.value.transient is True
    assert "Could not reach the relay host 127.0.0.1" in unreachable.value.message
    assert "connection refused" in unreachable.value.message


def test_a_server_that_never_answers_is_a_transient_error(keys):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts into the backlog, never speaks
        relay = PostfixRelay("127.0.0.1", silent.getsockname()[1], username="root",
                             private_key=keys["client"].private, host_key=keys["other_host"].public, timeout=0.5)
        with pytest.raises(ProviderError) as unanswered:
            relay.relay_state("quiet.example")
    assert unanswered.value.transient is True
    assert "Could not reach the relay host" in unanswered.value.message


def test_a_hand_edit_between_reading_and_writing_is_kept(relay, postfix, domain):
    edits = []

    def edit_by_hand():  # the transport table is written first
        if not edits:
            edits.append(1)
            with postfix.path("transport").open("a") as source:
                source.write("hand.example smtp:[hand.example.net]\n")

    with pytest.raises(ProviderError) as refused:
        relay.ensure_relay_domain(domain, transport=TRANSPORT, before_write=edit_by_hand)

    assert refused.value.transient is True
    assert "changed while we were editing it" in refused.value.message
    assert postfix.path("transport").read_text().endswith("hand.example smtp:[hand.example.net]\n")
    assert lines_for(postfix.path("transport"), domain) == lines_for(postfix.path("relay_domains"), domain) == []


def test_a_before_write_that_raises_stops_before_any_change(relay, postfix, domain):
    before = snapshot(postfix)

    def lease_lost():
        raise RuntimeError("lease lost")

    with pytest.raises(RuntimeError, match="lease lost"):
        relay.ensure_relay_domain(domain, transport=TRANSPORT, before_write=lease_lost)
    assert snapshot(postfix) == before


def test_a_stop_between_the_two_writes_leaves_the_domain_refused_until_the_next_run(relay, postfix, domain):
    calls = []

    def lease_lost_after_the_first_write():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("lease lost")

    with pytest.raises(RuntimeError, match="lease lost"):
        relay.ensure_relay_domain(domain, transport=TRANSPORT, before_write=lease_lost_after_the_first_write)

    # The route is in, the door is not: Postfix still refuses the domain, and no mail can loop.
    assert (answer(postfix, domain, "transport"), answer(postfix, domain, "relay_domains")) == (TRANSPORT, None)
    assert postfix.rcpt(f"x@{domain}")[0] == RELAY_DENIED
    assert relay.ensure_relay_domain(domain, transport=TRANSPORT) is True
    assert answer(postfix, domain, "relay_domains") == "OK"


def test_a_host_whose_main_cf_names_no_tables_is_refused(sshd, postfix, keys, domain):
    directory = make_directory("ardamail-postfix-plain-")
    (directory / "main.cf").write_text(f"relay_domains = {directory}/relay_domains\n")
    relay_services.settle(directory / "main.cf")
    relay = make_relay(sshd, postfix, keys, config_directory=str(directory))
    try:
        with pytest.raises(ProviderError) as refused:
            relay.ensure_relay_domain(domain, transport=TRANSPORT)
        assert refused.value.transient is False
        assert refused.value.message.startswith(
            f"Postfix on 127.0.0.1 does not use {directory}/relay_domains as a lookup table: its main.cf has "
            f"'relay_domains = {directory}/relay_domains'.")
        assert sorted(p.name for p in directory.iterdir()) == ["main.cf"]
    finally:
        remove(directory)


def test_a_failing_command_is_reported_with_its_stderr(sshd, postfix, keys, domain):
    relay = make_relay(sshd, postfix, keys, config_directory="/nonexistent/postfix")
    with pytest.raises(ProviderError) as failed:
        relay.relay_state(domain)
    assert failed.value.transient is False
    assert failed.value.message == (
        "The relay host 127.0.0.1 could not read relay_domains and transport_maps from main.cf: "
        "/usr/sbin/postconf: fatal: open /nonexistent/postfix/main.cf: No such file or directory (exit status 1).")
