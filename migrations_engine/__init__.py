"""The migration engine: plan, operations, executor, data copier, SSH/SFTP and the peer client.

It knows no screen: it never imports `wizard`.
"""
