"""Tools for development, the two-node demo and the tests: extra database and SSH servers.

Not part of the product: nothing in `appliance`, `wizard` or `migrations_engine` imports it.
"""
