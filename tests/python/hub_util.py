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


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """No access log; send() answers with a body of known length (none to a HEAD)."""

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


def serve_pair(handler):
    """The origin and, on another port (another origin, as a CDN is), where large files are sent:
    two servers of handler, started; (origin, cdn)."""
    servers = tuple(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2))
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return servers


def close_pair(servers):
    for server in servers:
        server.shutdown()
        server.server_close()


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
        self.cut_once = set()  # file names whose next download stops halfway
        self.ranges = []  # the Range header of each download (None for none)
        hub = self

        class Handler(QuietHandler):
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
                    if name in hub.cut_once:  # the connection drops halfway through
                        hub.cut_once.discard(name)
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data[:len(data) // 2])
                        self.close_connection = True
                        return
                    rng = self.headers.get("Range")
                    hub.ranges.append(rng)
                    if rng:  # "bytes=N-", as a CDN answers it
                        start = int(rng.split("=")[1].split("-")[0])
                        return self.send(206, data[start:], [("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")])
                    return self.send(200, data, [("Content-Type", "application/octet-stream")])
                self.send(404, b"not found")

        # The Hub and where its LFS objects are served.
        self.httpd, self.cdn = serve_pair(Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cdn_url = f"http://127.0.0.1:{self.cdn.server_address[1]}"

    def entry(self, name, data):
        e = {"type": "file", "oid": git_oid(data), "size": len(data), "path": name}
        if len(data) >= LFS_FROM:
            e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return e

    def close(self):
        close_pair((self.httpd, self.cdn))


class Registry:
    """An Ollama registry on loopback: GET /v2/NAMESPACE/MODEL/manifests/TAG (a Docker v2 manifest
    whose layers carry Ollama's media types) and /v2/NAMESPACE/MODEL/blobs/DIGEST, the model layer
    by a 307 to another origin (as the registry sends its large blobs to a CDN). Built from the
    manifest format Ollama documents and its registry serves; the real registry is out of this
    sandbox's reach, and no official client talks to it directly.

    models maps "NAMESPACE/MODEL:TAG" to {"model": path of a GGUF, "system": text, "params": dict,
    "template": text}."""

    def __init__(self, models):
        self.blobs, self.manifests, self.requests = {}, {}, []
        for name, parts in models.items():
            layers = []
            for kind, media in (("model", "application/vnd.ollama.image.model"),
                                ("template", "application/vnd.ollama.image.template"),
                                ("system", "application/vnd.ollama.image.system"),
                                ("params", "application/vnd.ollama.image.params"),
                                ("license", "application/vnd.ollama.image.license")):
                if kind not in parts:
                    continue
                v = parts[kind]
                data = open(v, "rb").read() if kind == "model" else (
                    json.dumps(v).encode() if kind == "params" else v.encode())
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
                self.blobs[digest] = data
                layers.append({"mediaType": media, "digest": digest, "size": len(data)})
            config = b'{"model_format": "gguf"}'
            self.blobs["sha256:" + hashlib.sha256(config).hexdigest()] = config
            self.manifests[name] = json.dumps({
                "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                           "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
                "layers": layers}).encode()
        reg = self

        class Handler(QuietHandler):
            def do_GET(self):
                reg.requests.append((self.server.server_address[1], self.path))
                parts = self.path.strip("/").split("/")
                if len(parts) == 5 and parts[0] == "v2" and parts[3] == "manifests":
                    if "application/vnd.docker.distribution.manifest.v2+json" not in self.headers.get("Accept", ""):
                        return self.send(406, b"manifest type not accepted")
                    m = reg.manifests.get(f"{parts[1]}/{parts[2]}:{parts[4]}")
                    if m is None:
                        return self.send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                    return self.send(200, m, [("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")])
                if len(parts) == 5 and parts[0] == "v2" and parts[3] == "blobs" and parts[4] in reg.blobs:
                    data = reg.blobs[parts[4]]
                    if len(data) >= LFS_FROM and self.server is reg.httpd:
                        return self.send(307, b"", [("Location", f"{reg.cdn_url}/v2/x/y/blobs/{parts[4]}")])
                    return self.send(200, data, [("Content-Type", "application/octet-stream")])
                self.send(404, b"not found")

        self.httpd, self.cdn = serve_pair(Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self.cdn.server_address[1]}"

    def close(self):
        close_pair((self.httpd, self.cdn))
