"""A small Hugging Face Hub look-alike on 127.0.0.1 for the publishing tests (standard library only).

It speaks the part of the Hub protocol that `huggingface_hub` (`create_repo`, `create_commit` with regular and LFS
"basic" uploads, `repo_info`/`dataset_info`, `list_repo_tree`, `get_paths_info`, `list_repo_commits`,
`update_repo_settings`, `whoami`, file download via `resolve`) and `datasets.load_dataset(repo_id)` /
`DatasetCard.load(repo_id)` use, with the Hub's status codes and `X-Error-Code` headers, so the clients raise the
errors they raise against the real Hub. State lives in memory: accounts (token -> user, role, orgs), repos with their
full commit history, and LFS blobs. Tests inject failures with `hub.fail(...)` and inspect `hub.repos`/`hub.log`.

Example:
```py
>>> hub = FakeHub({"hf_write": ("alice", "write", ["alice-org"])}).start()
>>> os.environ["HF_ENDPOINT"] = hub.url          # before importing huggingface_hub, in the client process
>>> hub.fail("POST", r"/commit/", 500)          # the next commit answers 500
>>> hub.stop()
```
"""

import base64
import datetime
import hashlib
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

# binary files go through LFS like on the Hub (its default .gitattributes)
LFS_SUFFIXES = (".parquet", ".arrow", ".png", ".jpg", ".jpeg", ".bin", ".safetensors", ".gz", ".zip", ".npy")
SIZE_CATEGORIES = (
    "n<1K",
    "1K<n<10K",
    "10K<n<100K",
    "100K<n<1M",
    "1M<n<10M",
    "10M<n<100M",
    "100M<n<1B",
    "1B<n<10B",
    "10B<n<100B",
    "100B<n<1T",
    "n>1T",
)
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
GITATTRIBUTES = b"".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n".encode() for s in LFS_SUFFIXES)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class StoredFile:
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def pointer(self) -> bytes:
        spec = "version https://git-lfs.github.com/spec/v1"
        return f"{spec}\noid sha256:{self.sha256}\nsize {len(self.content)}\n".encode()

    @property
    def oid(self) -> str:  # git blob id (of the pointer for LFS files)
        return git_blob_sha1(self.pointer if self.lfs else self.content)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.oid

    def entry(self, path: str) -> dict:
        out = {"type": "file", "oid": self.oid, "size": len(self.content), "path": path}
        if self.lfs:
            out["lfs"] = {"oid": self.sha256, "size": len(self.content), "pointerSize": len(self.pointer)}
        return out


@dataclass
class Commit:
    oid: str
    title: str
    message: str
    author: str
    date: str
    files: dict


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str = field(default_factory=_now)
    commits: list = field(default_factory=list)  # oldest first

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def at(self, revision: str) -> Commit | None:
        if revision in ("main", "HEAD"):
            return self.head
        for commit in self.commits:
            if revision and len(revision) >= 7 and commit.oid.startswith(revision):
                return commit
        return None


class HubHTTPError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


class FakeHub:
    """In-memory Hub. `accounts` maps token -> (user name, "write" or "read", [org names])."""

    def __init__(self, accounts: dict):
        self.accounts = {tok: {"name": n, "role": r, "orgs": list(o)} for tok, (n, r, o) in accounts.items()}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_blobs: dict[str, bytes] = {}
        self.log: list[dict] = []
        self._failures: list[dict] = []
        self._lock = threading.RLock()
        self._counter = 0
        self._server = None
        self._thread = None

    # ---- lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---- test controls -------------------------------------------------------------------------------------------
    def fail(self, method: str, path_regex: str, status: int, times: int = 1, message: str = "Injected failure"):
        """Answer the next `times` requests matching `method` and `path_regex` with `status` (before any effect)."""
        with self._lock:
            self._failures.append(
                {
                    "method": method.upper(),
                    "regex": re.compile(path_regex),
                    "status": status,
                    "times": times,
                    "message": message,
                }
            )

    def add_repo(self, repo_id: str, repo_type: str = "dataset", private: bool = False, files: dict | None = None):
        """Create a repo owned by its namespace, with an initial commit of `.gitattributes` plus `files`."""
        with self._lock:
            repo = Repo(repo_type, repo_id, private)
            content = {".gitattributes": StoredFile(GITATTRIBUTES, lfs=False)}
            for path, data in (files or {}).items():
                content[path] = StoredFile(data, lfs=path.endswith(LFS_SUFFIXES))
            repo.commits.append(self._new_commit(None, "initial commit", "", repo.namespace, content))
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def _new_commit(self, parent: Commit | None, title: str, message: str, author: str, files: dict) -> Commit:
        self._counter += 1
        digest = hashlib.sha1(
            json.dumps(
                [parent.oid if parent else None, title, self._counter, sorted((p, f.oid) for p, f in files.items())]
            ).encode()
        ).hexdigest()
        return Commit(digest, title, message, author, _now(), files)

    def _take_failure(self, method: str, path: str) -> dict | None:
        with self._lock:
            for failure in self._failures:
                if failure["method"] == method and failure["regex"].search(path) and failure["times"] > 0:
                    failure["times"] -= 1
                    return failure
        return None

    # ---- request handling ----------------------------------------------------------------------------------------
    def identity(self, headers) -> dict | None:
        auth = headers.get("authorization")
        if not auth:
            return None
        token = auth.split(" ", 1)[1].strip() if " " in auth else auth
        account = self.accounts.get(token)
        if account is None:
            raise HubHTTPError(401, "Invalid credentials in Authorization header")
        return account

    @staticmethod
    def namespaces(who: dict | None) -> set:
        return {who["name"], *who["orgs"]} if who else set()

    def _get_repo(self, repo_type: str, repo_id: str, who) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and repo.namespace not in self.namespaces(who)):
            raise HubHTTPError(404, "Repository not found", "RepoNotFound")
        return repo

    def _check_write(self, namespace: str, who, what: str):
        if who is None:
            raise HubHTTPError(401, "You must be authenticated to " + what)
        if who["role"] != "write" or namespace not in self.namespaces(who):
            raise HubHTTPError(403, f'You don\'t have the rights to {what} under the namespace "{namespace}"')

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.at(revision)
        if commit is None:
            raise HubHTTPError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def handle(self, method: str, raw_path: str, query: dict, headers, body: bytes):
        """Returns (status, headers, body bytes)."""
        failure = self._take_failure(method, raw_path)
        if failure is not None:
            raise HubHTTPError(failure["status"], failure["message"])
        who = self.identity(headers)
        seg = [urllib.parse.unquote(s) for s in raw_path.strip("/").split("/")]
        if seg[:2] == ["api", "whoami-v2"]:
            if who is None:
                raise HubHTTPError(401, "Invalid credentials in Authorization header")
            return _json(
                {
                    "type": "user",
                    "id": who["name"],
                    "name": who["name"],
                    "fullname": who["name"],
                    "orgs": [{"name": o, "type": "org"} for o in who["orgs"]],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": who["role"]}},
                }
            )
        if seg[:3] == ["api", "repos", "create"] and method == "POST":
            return self._create_repo(json.loads(body or b"{}"), who)
        if seg[:2] == ["api", "validate-yaml"] and method == "POST":
            return self._validate_yaml(json.loads(body or b"{}"))
        if seg[0] == "__lfs" and method == "PUT":
            oid = seg[1]
            if hashlib.sha256(body).hexdigest() != oid:
                raise HubHTTPError(400, "LFS object does not match its oid")
            with self._lock:
                self.lfs_blobs[oid] = body
            return 200, {}, b""
        if seg[0] == "api" and len(seg) >= 4 and seg[1] in REPO_TYPES:
            repo_type, repo_id, rest = REPO_TYPES[seg[1]], f"{seg[2]}/{seg[3]}", seg[4:]
            return self._repo_api(method, repo_type, repo_id, rest, query, who, body)
        # LFS batch: /{datasets/}ns/name.git/info/lfs/objects/batch
        prefix, rest = (REPO_TYPES[seg[0]], seg[1:]) if seg[0] in REPO_TYPES else ("model", seg)
        if len(rest) >= 3 and rest[1].endswith(".git") and rest[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(prefix, f"{rest[0]}/{rest[1][:-4]}", json.loads(body or b"{}"), who)
        if len(rest) >= 5 and rest[2] == "resolve":
            repo = self._get_repo(prefix, f"{rest[0]}/{rest[1]}", who)
            return self._resolve(method, repo, rest[3], "/".join(rest[4:]), headers)
        raise HubHTTPError(404, f"Not found: {method} {raw_path}")

    def _create_repo(self, payload: dict, who):
        name, namespace = payload.get("name"), payload.get("organization") or (who or {}).get("name")
        repo_type = payload.get("type") or "model"
        if who is None:
            raise HubHTTPError(401, "You must be authenticated to create a repo")
        self._check_write(namespace, who, f"create a {repo_type}")
        repo_id = f"{namespace}/{name}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                raise HubHTTPError(
                    409,
                    f"You already created this {repo_type} repo",
                    extra={"url": f"{self.public_url}/{prefix}{repo_id}"},
                )
            visibility = payload.get("visibility")
            private = visibility == "private" if visibility is not None else bool(payload.get("private", False))
            self.add_repo(repo_id, repo_type, private)
        return _json({"url": f"{self.public_url}/{prefix}{repo_id}", "name": repo_id, "id": repo_id})

    @staticmethod
    def _validate_yaml(payload: dict):
        content = payload.get("content", "")
        errors = []
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, re.S)
        if match:
            try:
                meta = yaml.safe_load(match.group(1)) or {}
            except yaml.YAMLError as e:
                meta, errors = {}, [{"message": f"Invalid YAML: {e}"}]
            if not isinstance(meta, dict):
                errors.append({"message": "metadata must be a mapping"})
                meta = {}
            sizes = meta.get("size_categories") or []
            for size in [sizes] if isinstance(sizes, str) else sizes:
                if size not in SIZE_CATEGORIES:
                    errors.append({"message": f'"size_categories" must be one of {SIZE_CATEGORIES}, got {size!r}'})
            for config in meta.get("configs") or []:
                if not isinstance(config, dict) or "config_name" not in config or "data_files" not in config:
                    errors.append({"message": f'"configs" items need config_name and data_files, got {config!r}'})
        if errors:
            return 400, {"Content-Type": "application/json"}, json.dumps({"errors": errors}).encode()
        return _json({"errors": [], "warnings": []})

    def _repo_api(self, method, repo_type, repo_id, rest, query, who, body):
        if method == "PUT" and rest == ["settings"]:
            repo = self._get_repo(repo_type, repo_id, who)
            self._check_write(repo.namespace, who, "change the settings of a repo")
            payload = json.loads(body or b"{}")
            with self._lock:
                if "visibility" in payload:
                    repo.private = payload["visibility"] == "private"
                elif "private" in payload:
                    repo.private = bool(payload["private"])
            return _json({})
        repo = self._get_repo(repo_type, repo_id, who)
        if method == "GET" and (not rest or rest[0] == "revision"):
            commit = self._commit_at(repo, rest[1] if len(rest) > 1 else "main")
            return _json(self._info(repo, commit))
        if method == "GET" and rest[0] == "tree" and len(rest) >= 2:
            commit = self._commit_at(repo, rest[1])
            return _json(
                self._tree(commit, "/".join(rest[2:]), _true(query.get("recursive")), _true(query.get("expand")))
            )
        if method == "POST" and rest[0] == "paths-info":
            commit = self._commit_at(repo, rest[1])
            form = urllib.parse.parse_qs(body.decode())
            out = []
            for path in form.get("paths", []):
                path = path.strip("/")
                if path in commit.files:
                    out.append(commit.files[path].entry(path))
                elif any(p.startswith(path + "/") for p in commit.files):
                    out.append({"type": "directory", "oid": git_blob_sha1(path.encode()), "size": 0, "path": path})
            return _json(out)
        if method == "GET" and rest[0] == "commits":
            commit = self._commit_at(repo, rest[1] if len(rest) > 1 else "main")
            history = repo.commits[: repo.commits.index(commit) + 1][::-1]
            return _json(
                [
                    {
                        "id": c.oid,
                        "title": c.title,
                        "message": c.message,
                        "authors": [{"user": c.author}],
                        "date": c.date,
                    }
                    for c in history
                ]
            )
        if method == "POST" and rest[0] == "preupload":
            self._check_write(repo.namespace, who, "upload files")
            commit = self._commit_at(repo, rest[1])
            files = []
            for item in json.loads(body)["files"]:
                mode = "lfs" if item["path"].endswith(LFS_SUFFIXES) or item["size"] >= 10 * 2**20 else "regular"
                remote = commit.files.get(item["path"])
                oid = None if remote is None else (remote.sha256 if mode == "lfs" else git_blob_sha1(remote.content))
                files.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
            return _json({"files": files, "commitOid": commit.oid})
        if method == "POST" and rest[0] == "commit":
            self._check_write(repo.namespace, who, "commit")
            return self._commit(repo, rest[1], body, who)
        raise HubHTTPError(404, f"Not found: {method} /api/{repo_type}s/{repo_id}/{'/'.join(rest)}")

    def _info(self, repo: Repo, commit: Commit) -> dict:
        card = None
        readme = commit.files.get("README.md")
        if readme is not None:
            match = re.match(r"^---\s*\n(.*?)\n---\s*\n", readme.content.decode("utf-8", "replace"), re.S)
            card = yaml.safe_load(match.group(1)) if match else None
        return {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.namespace,
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "cardData": card,
            "siblings": [{"rfilename": p} for p in sorted(commit.files)],
            "usedStorage": sum(len(f.content) for f in commit.files.values()),
        }

    @staticmethod
    def _tree(commit: Commit, path: str, recursive: bool, expand: bool) -> list:
        path = path.strip("/")
        prefix = path + "/" if path else ""
        if path and path in commit.files:
            raise HubHTTPError(404, f"{path} is a file, not a folder", "EntryNotFound")
        paths = [p for p in sorted(commit.files) if p.startswith(prefix)]
        if path and not paths:
            raise HubHTTPError(404, f"Entry not found: {path}", "EntryNotFound")
        out, folders = [], set()
        for p in paths:
            parts = p[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                if folder not in folders and (recursive or depth == 1):
                    folders.add(folder)
                    out.append({"type": "directory", "oid": git_blob_sha1(folder.encode()), "size": 0, "path": folder})
            if recursive or len(parts) == 1:
                entry = commit.files[p].entry(p)
                if expand:
                    entry["lastCommit"] = {"id": commit.oid, "title": commit.title, "date": commit.date}
                out.append(entry)
        return out

    def _lfs_batch(self, repo_type, repo_id, payload, who):
        repo = self._get_repo(repo_type, repo_id, who)
        self._check_write(repo.namespace, who, "upload LFS files")
        objects = []
        for obj in payload.get("objects", []):
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs_blobs:
                entry["actions"] = {"upload": {"href": f"{self.public_url}/__lfs/{obj['oid']}", "header": {}}}
            objects.append(entry)
        return (
            200,
            {"Content-Type": "application/vnd.git-lfs+json"},
            json.dumps({"transfer": "basic", "objects": objects}).encode(),
        )

    def _commit(self, repo: Repo, revision: str, body: bytes, who):
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next((item["value"] for item in lines if item["key"] == "header"), None)
        if header is None or not header.get("summary"):
            raise HubHTTPError(400, "A commit needs a header with a summary")
        with self._lock:
            parent = self._commit_at(repo, revision)
            if header.get("parentCommit") and not parent.oid.startswith(header["parentCommit"]):
                raise HubHTTPError(412, "The parent commit is not the head of the branch")
            files = dict(parent.files)
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "file":
                    files[value["path"]] = StoredFile(base64.b64decode(value["content"]), lfs=False)
                elif key == "lfsFile":
                    blob = self.lfs_blobs.get(value["oid"])
                    if blob is None:
                        raise HubHTTPError(422, f"LFS object {value['oid']} was not uploaded")
                    files[value["path"]] = StoredFile(blob, lfs=True)
                elif key == "deletedFile":
                    if value["path"] not in files:
                        raise HubHTTPError(404, "A file with this name doesn't exist", "EntryNotFound")
                    del files[value["path"]]
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    for p in [p for p in files if p.startswith(prefix)]:
                        del files[p]
                elif key != "header":
                    raise HubHTTPError(400, f"Unknown commit operation {key!r}")
            commit = self._new_commit(parent, header["summary"], header.get("description", ""), who["name"], files)
            repo.commits.append(commit)
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return _json(
            {
                "success": True,
                "commitOid": commit.oid,
                "hookOutput": "",
                "pullRequestUrl": None,
                "commitUrl": f"{self.public_url}/{prefix}{repo.repo_id}/commit/{commit.oid}",
            }
        )

    def _resolve(self, method, repo: Repo, revision: str, path: str, headers):
        commit = self._commit_at(repo, revision)
        stored = commit.files.get(path)
        if stored is None:
            raise HubHTTPError(404, f"Entry not found: {path}", "EntryNotFound")
        data = stored.content
        out = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{stored.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if stored.lfs:
            out.update({"X-Linked-Etag": f'"{stored.etag}"', "X-Linked-Size": str(len(data))})
        status = 200
        match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", headers.get("range") or "")
        if match and data:
            start = int(match.group(1)) if match.group(1) else max(len(data) - int(match.group(2)), 0)
            end = int(match.group(2)) if match.group(1) and match.group(2) else len(data) - 1
            end = min(end, len(data) - 1)
            if start >= len(data):
                return 416, {"Content-Range": f"bytes */{len(data)}"}, b""
            out["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        return status, out, data

    @property
    def public_url(self) -> str:
        return self.url


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub = None

    def log_message(self, format, *args):  # keep test output clean; requests are in hub.log
        pass

    def _serve(self, method: str):
        split = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(split.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, headers, data = self.hub.handle(method, split.path, query, self.headers, body)
        except HubHTTPError as e:
            status, data = e.status, json.dumps({"error": e.message, **e.extra}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Message": e.message}
            if e.code:
                headers["X-Error-Code"] = e.code
        except Exception as e:
            status, data = 500, json.dumps({"error": f"fake hub bug: {type(e).__name__}: {e}"}).encode()
            headers = {"Content-Type": "application/json"}
        with self.hub._lock:
            self.hub.log.append(
                {
                    "method": method,
                    "path": split.path,
                    "status": status,
                    "authenticated": self.headers.get("authorization") is not None,
                }
            )
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        self._serve("GET")

    def do_HEAD(self):
        self._serve("HEAD")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")


def _json(obj) -> tuple:
    return 200, {"Content-Type": "application/json"}, json.dumps(obj).encode()


def _true(value) -> bool:
    return str(value).lower() in ("1", "true")
