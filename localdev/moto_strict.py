"""moto, local mode's and the tests' Route53, made as strict as Route53 where the code depends on it.

Route53 lists record sets sorted by name with the labels reversed *and a trailing dot*, compared in
ASCII (docs/providers/route53.md#listing-records): `orders-eu.t1.example.com` (`com.example.t1.orders-eu.`)
sorts before `orders.t1.example.com` (`com.example.t1.orders.`), because "-" comes before ".".
moto reverses the labels without the dot, so it lists them the other way round. Reads that jump
through the listing (integrations.dns.route53) must be checked against the real order.

`python -m localdev.moto_strict -H 127.0.0.1 -p 5000` runs moto's server with the real order.
"""

import sys


def listing_order(name: str) -> str:
    return ".".join(reversed(name.lower().removesuffix(".").split("."))) + "."


def apply() -> None:
    import moto.route53.models

    moto.route53.models.reverse_domain_name = listing_order


if __name__ == "__main__":
    apply()
    from moto.server import main

    main(sys.argv[1:])
