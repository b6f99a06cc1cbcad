"""The filesystem broker of local mode, with messages that appear whole.

kombu's filesystem transport creates a message file in the queue folder and only then writes it.
A worker polling the folder in between takes the empty file, fails to parse it, and the worker
process stops (kombu issue #1551 reports the same JSON error from an empty message file). Several
people onboarding at once while `make run`'s worker polls hit that window. Here a message is
written under a name the worker does not read and renamed into the queue folder once complete:
a rename within one folder is atomic, so a worker sees a whole message or none. A message that
still cannot be read (a file left by something else) is logged and skipped, never fatal.
"""

import logging
import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

log = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"  # kombu's own naming
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f"~{uuid.uuid4()}.part")  # no queue reads ".part"
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add a message to {self.data_folder_out!r}") from exc

    def _get(self, queue):
        while True:  # each try takes one file out of the folder; Empty ends the loop
            try:
                return super()._get(queue)
            except ValueError:
                log.error("skipped an unreadable message file in the broker folder (queue %s)", queue)


class Transport(filesystem.Transport):
    Channel = Channel
