"""Sample data for development, the demo and tests, as data files both systems read.

``persons.json`` is shared by the gateway (its registry of insured persons) and the
simulator (the provinces' records of the same people); ``institutions.json`` and
``catalogue.json`` are the gateway's. No code lives here.
"""
