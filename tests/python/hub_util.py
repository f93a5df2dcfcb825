"""A Hugging Face Hub on loopback for the pull tests (`lowbit pull`, /api/pull): the Hub's file
listing (GET /api/models/USER/REPO/tree/main), and its downloads (/USER/REPO/resolve/main/FILE),
large files as the Hub serves LFS objects (a 302 to a content address, with X-Linked-Etag and
X-Linked-Size naming the object's SHA-256 and size), small ones directly with their git oid as
ETag. That it speaks the Hub's protocol is checked by the official `huggingface_hub` client,
which lists and downloads through it (test_pull.py); the real Hub is out of this sandbox's reach.

repos maps "USER/REPO" to {file name: local path}; corrupt names files served with one byte
changed (their listed hash stays the true one)."""

import hashlib
import http.server
import json
import threading
import urllib.parse

LFS_FROM = 1 << 16  # files this large are LFS objects, as the Hub stores weights


def git_oid(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub:
    def __init__(self, repos, corrupt=()):
        self.files = {}  # (repo, name) -> bytes
        for repo, files in repos.items():
            for name, path in files.items():
                self.files[(repo, name)] = open(path, "rb").read()
        self.by_sha = {hashlib.sha256(d).hexdigest(): d for d in self.files.values()}
        self.corrupt = set(corrupt)
        self.requests = []
        self.authorized = []  # (port, path) of requests that carried an Authorization header
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def send(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                hub.requests.append(self.path)
                if self.headers.get("Authorization"):
                    hub.authorized.append((self.server.server_address[1], self.path))
                path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4:6] == ["tree", "main"]:
                    repo = "/".join(parts[2:4])
                    listing = [hub.entry(name, data) for (r, name), data in sorted(hub.files.items()) if r == repo]
                    if not listing:
                        return self.send(401, b'{"error": "Repository Not Found"}')
                    return self.send(200, json.dumps(listing).encode(), [("Content-Type", "application/json")])
                if len(parts) >= 5 and parts[2:4] == ["resolve", "main"]:
                    repo, name = "/".join(parts[:2]), "/".join(parts[4:])
                    data = hub.files.get((repo, name))
                    if data is None:
                        return self.send(404, b"Entry not found")
                    common = [("X-Repo-Commit", "0" * 40)]
                    if len(data) >= LFS_FROM:
                        sha = hashlib.sha256(data).hexdigest()
                        return self.send(302, b"", common + [
                            ("Location", f"{hub.cdn_url}/cdn/{sha}?name={urllib.parse.quote(name)}"),
                            ("X-Linked-Etag", f'"{sha}"'), ("X-Linked-Size", str(len(data)))])
                    if name in hub.corrupt:
                        data = bytes([data[0] ^ 1]) + data[1:]
                    return self.send(200, data, common + [("ETag", f'"{git_oid(data)}"')])
                if parts[0] == "cdn" and len(parts) == 2 and parts[1] in hub.by_sha:
                    data = hub.by_sha[parts[1]]
                    name = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query).get("name", [""])[0]
                    if name in hub.corrupt:
                        data = bytes([data[0] ^ 1]) + data[1:]
                    return self.send(200, data, [("Content-Type", "application/octet-stream")])
                self.send(404, b"not found")

        # The Hub and, on another port (another origin, as a CDN is), where LFS objects are served.
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.cdn = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cdn_url = f"http://127.0.0.1:{self.cdn.server_address[1]}"
        for server in (self.httpd, self.cdn):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def entry(self, name, data):
        e = {"type": "file", "oid": git_oid(data), "size": len(data), "path": name}
        if len(data) >= LFS_FROM:
            e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return e

    def close(self):
        for server in (self.httpd, self.cdn):
            server.shutdown()
            server.server_close()
