"""Signing in and sessions (issue 12, "Login and sessions"): repeated failures lock a username out,
even with the right password, until the lock-out ends (django-axes); every page carries a
Content-Security-Policy without inline script or style; a session ends after the idle limit and
after the maximum lifetime from signing in."""

import time

from django.test import Client
from django.urls import reverse

from ardamail_admin.middleware import SIGNED_IN_AT

LOGIN = "/accounts/login/"


def attempt(client: Client, username: str, password: str):
    return client.post(LOGIN, {"username": username, "password": password})


def test_forty_wrong_passwords_lock_the_username_out_and_then_even_the_right_one_is_refused(
        support_user, settings):
    support_user.set_password("right-password")
    support_user.save()
    client = Client()
    answers = [attempt(client, "support1", f"wrong-{i}").status_code for i in range(40)]
    # The first LOGIN_FAILURE_LIMIT - 1 get the form again; from the limit on, the lock-out page.
    assert answers[:settings.AXES_FAILURE_LIMIT - 1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert answers[settings.AXES_FAILURE_LIMIT - 1:] == [429] * (41 - settings.AXES_FAILURE_LIMIT)
    locked = attempt(client, "support1", "right-password")
    assert locked.status_code == 429 and "_auth_user_id" not in client.session
    page = locked.content.decode()
    assert "There were 5 failed attempts to sign in as <code>support1</code>" in page
    assert "refused for 15 minutes, even with the right password" in page
    # Another username is not affected: the lock is the username's.
    assert attempt(Client(), "someone-else", "x").status_code == 200


def test_the_lock_out_ends_after_its_time_and_a_success_clears_the_count(support_user, settings):
    from axes.models import AccessAttempt

    support_user.set_password("right-password")
    support_user.save()
    client = Client()
    for i in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "support1", f"wrong-{i}")
    assert attempt(client, "support1", "right-password").status_code == 429
    # The cool-off has passed (its attempts are older than LOGIN_LOCKOUT_MINUTES).
    from django.utils import timezone

    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME * 2)
    response = attempt(client, "support1", "right-password")
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(support_user.pk)
    assert not AccessAttempt.objects.filter(username="support1").exists()  # reset on success


def test_every_page_carries_a_content_security_policy_without_inline_code(support_client, configured_partitions):
    for url in (reverse("dashboard:home"), reverse("dashboard:audit"), LOGIN, "/admin/"):
        response = support_client.get(url)
        policy = response["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'", url
        assert "unsafe-inline" not in policy and directives["frame-ancestors"] == "'none'", url


def test_a_session_ends_after_the_idle_limit_and_after_its_maximum_lifetime(support_user, settings):
    support_user.set_password("right-password")
    support_user.save()
    client = Client()
    assert attempt(client, "support1", "right-password").status_code == 302
    home = reverse("dashboard:home")
    assert client.get(home).status_code == 200
    # Idle: the cookie lasts SESSION_IDLE_MINUTES and is renewed on every request.
    assert settings.SESSION_SAVE_EVERY_REQUEST and client.cookies["sessionid"]["max-age"] == settings.SESSION_COOKIE_AGE
    # Busy but signed in longer than SESSION_MAX_HOURS: signed out, and asked to sign in again.
    session = client.session
    session[SIGNED_IN_AT] = time.time() - settings.SESSION_MAX_HOURS * 3600 - 1
    session.save()
    response = client.get(home)
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert "_auth_user_id" not in client.session
