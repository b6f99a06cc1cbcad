from django.core.management.base import BaseCommand

from tenants.crypto import generate_key


class Command(BaseCommand):
    help = "Print a new Fernet key for a partition's …-I-EmailEncryptionKey secret."

    def handle(self, *args, **options):
        self.stdout.write(generate_key())
