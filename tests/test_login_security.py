"""Signing in and sessions (issue 12, "Login and sessions"): repeated failures lock a username out,
even with the right password, until the lock-out ends (django-axes); every page carries a
Content-Security-Policy without inline script or style; a session ends after the idle limit and
after the maximum lifetime from signing in."""

import time

from django.test import Client
from django.urls import reverse

from ardamail_admin.middleware import LAST_ACTIVE, SIGNED_IN_AT

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


def test_a_session_ends_after_the_idle_limit_and_after_its_maximum_lifetime(support_user, settings,
                                                                            configured_partitions):
    from tenants.models import EmailConfiguration, Tenant

    support_user.set_password("right-password")
    support_user.save()
    configuration = EmailConfiguration.objects.create(
        tenant=Tenant.objects.create(slug="acme", display_name="Acme"), partition=configured_partitions["prod"],
        config_slug="orders")
    client = Client()
    assert attempt(client, "support1", "right-password").status_code == 302
    home, live = reverse("dashboard:home"), reverse("dashboard:configuration_live", args=[configuration.pk])
    assert client.get(home).status_code == 200

    def age(key: str, seconds: float) -> None:
        session = client.session
        session[key] = time.time() - seconds
        session.save()

    # A page's background polls are not activity: idle past SESSION_IDLE_MINUTES, even a poll
    # finds the session over (and the page says so).
    age(LAST_ACTIVE, settings.SESSION_IDLE_MINUTES * 60 - 30)
    assert client.get(live, HTTP_X_ARDAMAIL_POLL="1").status_code == 200
    assert time.time() - client.session[LAST_ACTIVE] > settings.SESSION_IDLE_MINUTES * 60 - 31  # not renewed
    age(LAST_ACTIVE, settings.SESSION_IDLE_MINUTES * 60 + 1)
    response = client.get(live, HTTP_X_ARDAMAIL_POLL="1")
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert "_auth_user_id" not in client.session

    # A person's request renews it; past SESSION_MAX_HOURS from signing in, busy or not, it ends.
    assert attempt(client, "support1", "right-password").status_code == 302
    age(LAST_ACTIVE, 600)
    assert client.get(home).status_code == 200 and time.time() - client.session[LAST_ACTIVE] < 60
    age(SIGNED_IN_AT, settings.SESSION_MAX_HOURS * 3600 + 1)
    response = client.get(home)
    assert response.status_code == 302 and response["Location"] == f"{LOGIN}?next={home}"
    # Signing out after the session ended goes to the sign-in page, not back to a POST-only URL.
    assert attempt(client, "support1", "right-password").status_code == 302
    age(SIGNED_IN_AT, settings.SESSION_MAX_HOURS * 3600 + 1)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == f"{LOGIN}?next=/"


def test_a_try_during_a_lock_out_does_not_make_it_last_longer(support_user, settings):
    from axes.models import AccessAttempt
    from django.utils import timezone

    support_user.set_password("right-password")
    support_user.save()
    client = Client()
    for i in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "support1", f"wrong-{i}")
    started = timezone.now() - settings.AXES_COOLOFF_TIME + timezone.timedelta(minutes=1)
    AccessAttempt.objects.update(attempt_time=started)  # 14 of the 15 minutes have passed
    assert attempt(client, "support1", "wrong-again").status_code == 429
    assert AccessAttempt.objects.get(username="support1").attempt_time == started  # the clock did not restart
