"""Remote access to the source over SSH: trust, SFTP copies, commands and reboots.

- `session.ssh_session`: a run's key pair, authorised through the peer API, the host key pinned,
  revoked at the end.
- `tree.copy_tree` / `tree.copy_file`: resumable, incremental, SHA-256 checked copies that write
  nothing outside their target, the bytes through OpenSSH's client (`openssh`, `streams`) for a
  session or over SFTP for a bare connection, with an optional bandwidth limit;
  `listing.remote_tree` checks the source's names and bounds its listing.
- `commands.run_command`, `reboot.reboot_and_wait`: remote commands with time limits.
"""
