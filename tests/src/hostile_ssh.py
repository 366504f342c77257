# An SSH server that sends what a hostile one would, for the client's tests.
# usage: python3 hostile_ssh.py HOST_KEY MODE; prints the port it listens on (127.0.0.1),
# serves until killed.
#   auth:   refuses every login with a list of methods that is not UTF-8 (pass\xffword)
#   signal: takes any login; a command ends with an exit-signal whose name is not UTF-8
import socket
import sys
import threading
import time

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message

key = paramiko.Ed25519Key.from_private_key_file(sys.argv[1])
mode = sys.argv[2]


class Server(paramiko.ServerInterface):
    def get_allowed_auths(self, username):
        return b"pass\xffword" if mode == "auth" else "none,publickey"

    def check_auth_none(self, username):
        return paramiko.AUTH_FAILED if mode == "auth" else paramiko.AUTH_SUCCESSFUL

    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_FAILED if mode == "auth" else paramiko.AUTH_SUCCESSFUL

    def check_auth_password(self, username, password):
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        threading.Thread(target=killed, args=(channel,), daemon=True).start()
        return True


def killed(channel):
    time.sleep(0.1)
    channel.sendall(b"started\n")
    m = Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(channel.remote_chanid)
    m.add_string("exit-signal")
    m.add_boolean(False)
    m.add_string(b"\xff\xfeKILL")
    m.add_boolean(False)
    m.add_string(b"")
    m.add_string(b"")
    channel.transport._send_user_message(m)
    time.sleep(0.1)
    channel.close()


def serve(conn):
    transport = paramiko.Transport(conn)
    transport.add_server_key(key)
    transport.start_server(server=Server())
    transport.join(30)
    transport.close()


listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(16)
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
