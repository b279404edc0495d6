"""The HTTP edge: problem details, JSON answers and the OpenAPI description.

Foundation package: it knows Litestar and :mod:`medpay.errors`, and no domain.
"""
