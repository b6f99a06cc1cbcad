"""What an error report may show: Django's safe filter (settings, request, POST), and no variable of a
failing frame whose name says it holds a credential (a token, a key, a secret, request headers), so
a DEBUG traceback in local mode or an error mail never shows one. The functions that read secrets
under plain names (tenants.secrets, tenants.crypto) hide all their variables (sensitive_variables)."""

import re

from django.views.debug import SafeExceptionReporterFilter


class SecretsHidingFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile("API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|CREDENTIAL|AUTH", flags=re.I)
    secret_variables = re.compile(r"token|secret|key|password|passwd|credential|auth|bearer|headers", flags=re.I)

    def get_traceback_frame_variables(self, request, tb_frame):
        return [(name, self.cleansed_substitute if self.secret_variables.search(name) else value)
                for name, value in super().get_traceback_frame_variables(request, tb_frame)]
