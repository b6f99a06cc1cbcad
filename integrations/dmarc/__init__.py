"""DMARC aggregate reports as receivers send them (RFC 7489 Appendix C, RFC 9990): unpacked and
parsed safely into plain values (`aggregate.py`). No I/O beyond the bytes given; storing and
counting is `events/dmarc_reports.py`'s."""
