"""The national mobile-payment interface: a second front door for apps built against it.

6201 fee upload, 6202 pay, 6203 refund, 6301 order query and 6401 upload cancel in
the national envelope (SM2-signed, SM4-encrypted; DOMAIN.md section 8), mapped onto
the same payment flow as ``/v1/payments``.

Layer: beside callbacks and notifications, above payments. May import payments and
every layer below it.
"""

from __future__ import annotations

__all__: list[str] = []
