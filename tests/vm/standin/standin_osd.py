"""Stand-in for `osd serve` under systemd (VM lab only): take the activated socket, send
READY=1, answer every HTTP request with {"status":"ok"}."""
import os
import socket

BODY = b'{"status":"ok"}'
REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
         b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY))


def notify(message: bytes) -> None:
    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):  # abstract namespace
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(message, addr)


def main() -> None:
    if os.environ.get("LISTEN_FDS") != "1" or os.environ.get("LISTEN_PID") != str(os.getpid()):
        raise SystemExit("standin_osd: expected one socket from systemd")
    server = socket.socket(fileno=3)
    notify(b"READY=1")
    while True:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(REPLY)


if __name__ == "__main__":
    main()
