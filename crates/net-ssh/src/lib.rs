//! SSH client on ssh2 (libssh2): coming in the net-ssh issue.
