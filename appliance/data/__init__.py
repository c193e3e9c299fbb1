"""The appliance's business data (subscribers, sessions, vouchers, events): the data database.

These models live in their own database, reached through `appliance.routers`; its migrations
are the data schema's versions (2.0 -> 2.1 -> 3.0 -> 3.2), so a copy from an older source can be
upgraded step by step.
"""
